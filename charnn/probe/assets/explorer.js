"use strict";
(function () {
const RED = [160, 18, 28], BLUE = [18, 52, 150], GOLD = "rgb(232,160,0)";
const GATE_COLOURS = { i: "#1b9e77", f: "#d95f02", o: "#7570b3", r: "#1b9e77", z: "#d95f02" };
const STATE_HELP = { h: "hidden state h", c: "cell state c", i: "input gate i", f: "forget gate f", g: "candidate g",
  o: "output gate o", r: "reset gate r", z: "update gate z", n: "candidate n" };
const $ = (id) => document.getElementById(id);
const el = (tag, props, ...children) => {
  const node = document.createElement(tag);
  if (props) for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};

// ------------------------------------------------------------ data
const D = JSON.parse($("charnn-data").textContent);
const R = D.report;
let N = D.chars;  // characters of the text shown: the probed text's, or the user's under the live model
const SIGMOID = new Set(D.gates);  // the states in [0, 1]

function bytesOf(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
async function unpack(blob) {
  const raw = bytesOf(blob.b64);
  if (blob.enc !== "deflate") return raw;
  if (typeof DecompressionStream === "undefined") throw new Error("this browser has no DecompressionStream (Chrome 80+, Firefox 113+, Safari 16.4+ have it)");
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
function typed(bytes, dtype) {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return dtype === "uint16" ? new Uint16Array(buffer) : dtype === "int16" ? new Int16Array(buffer)
       : dtype === "int32" ? new Int32Array(buffer) : new Uint8Array(buffer);
}

const S = {
  layer: 1, unit: 0, state: "h", feature: null, pos: null, cScale: "centred",
  tracks: new Map(), features: new Map(), heldoutStart: R.split.heldout.start, source: "probed", probed: null,
  predIds: null, predProbs: null, actual: null, spans: [], lineOf: null, colOf: null,
};

async function load() {
  const [ids, probs, actual, ...blobs] = await Promise.all([
    unpack(D.predictions.ids), unpack(D.predictions.probs), unpack(D.predictions.actual),
    ...D.features.map((f) => unpack(f.data)), ...D.features.map((f) => f.defined ? unpack(f.defined) : null),
    ...D.tracks.map((g) => unpack(g.data)),
  ]);
  const count = D.features.length;
  const features = blobs.slice(0, count), defined = blobs.slice(count, 2 * count), groups = blobs.slice(2 * count);
  D.tracks.forEach((group, g) => {
    const bytes = groups[g], values = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (values.length !== group.units.length * N) throw new Error(`track block ${g} holds ${values.length} bytes, not ${group.units.length * N}`);
    group.units.forEach(([layer, unit], k) => {
      const track = values.subarray(k * N, (k + 1) * N);
      if (group.delta) {  // stored as differences: add them up again (int8 arithmetic wraps like the encoder's mod 256)
        let running = 0;
        for (let i = 0; i < N; i++) { running = (running + track[i]) << 24 >> 24; track[i] = running; }
      }
      S.tracks.set(key(layer, unit, group.state), { values: track, levels: group.levels, scale: group.scales ? group.scales[k] : 1, view: null });
    });
  });
  S.predIds = typed(ids, D.predictions.id_dtype);
  S.predProbs = probs;
  S.actual = actual;
  S.unitScores = new Map();
  for (const [name, blob] of Object.entries(D.unit_scores || {})) S.unitScores.set(name, await unpack(blob));
  D.features.forEach((f, k) => {
    const labels = f.dtype === "bits" ? bitsOf(features[k]) : typed(features[k], f.dtype);
    S.features.set(f.name, { ...f, labels, defined: defined[k] ? bitsOf(defined[k]) : null });
  });
}

function bitsOf(bytes) {  // one byte a character from bits packed little-endian
  const out = new Uint8Array(N);
  for (let i = 0; i < N; i++) out[i] = (bytes[i >> 3] >> (i & 7)) & 1;
  return out;
}
const holds = (f, i) => !f.defined || f.defined[i] === 1;  // the feature's label is defined at i

// ------------------------------------------------------------ values and colours
function key(layer, unit, state) { return `${layer}:${unit}:${state}`; }
const has = (layer, unit, state) => S.tracks.has(key(layer, unit, state));
const track = (layer, unit, state) => S.tracks.get(key(layer, unit, state)) || null;
function realValue(entry, i, state) {  // the recorded value the stored step at position i stands for
  if (entry.real) return entry.real[i];  // the live model's own float values
  const v = entry.values[i] / entry.levels;
  if (SIGMOID.has(state)) return 0.5 + 0.5 * v;
  return state === "c" ? v * entry.scale : v;
}
// How a track is drawn: per stored step q (offset by levels), a position t in [-1, 1] on the colour scale.
// c is unbounded and often drifts, so it has three scales: centred on the unit's median (white) and
// spread to its 98th percentile distance from it; symmetric around 0 to its max |c|; or tanh(c), as h sees it.
const C_SCALES = { centred: "centred on its median", max: "0 ± its max |c|", tanh: "tanh(c), as h sees it" };
function trackView(entry, state) {
  const mode = state === "c" ? S.cScale : SIGMOID.has(state) ? "gate" : "plain";
  if (entry.view && entry.view.mode === mode) return entry.view;
  const L = entry.levels, t = new Float32Array(2 * L + 1), real = (q) => q / L * entry.scale;
  let low = "−1", mid = "0", high = "+1", f = (q) => q / L;
  if (mode === "gate") { low = "0 shut"; mid = "0.5"; high = "1 open"; }
  else if (mode === "max") { low = (-entry.scale).toFixed(2); high = "+" + entry.scale.toFixed(2); }
  else if (mode === "tanh") { f = (q) => Math.tanh(real(q)); low = "tanh −1"; high = "tanh +1"; }
  else if (mode === "centred") {  // median and spread from a histogram of the stored steps
    const counts = new Int32Array(2 * L + 1), values = entry.values;
    for (let i = 0; i < N; i++) counts[values[i] + L]++;
    let seen = 0, median = 0;
    for (let q = 0; q <= 2 * L; q++) { seen += counts[q]; if (seen * 2 >= N) { median = q - L; break; } }
    const distance = new Int32Array(2 * L + 1);
    for (let q = 0; q <= 2 * L; q++) distance[Math.abs(q - L - median)] += counts[q];
    let spread = 1;
    for (let d = 0, seenFar = 0; d <= 2 * L; d++) { seenFar += distance[d]; if (seenFar >= 0.98 * N) { spread = Math.max(1, d); break; } }
    f = (q) => Math.max(-1, Math.min(1, (q - median) / spread));
    low = real(median - spread).toFixed(2); mid = real(median).toFixed(2); high = real(median + spread).toFixed(2);
  }
  const colour = new Uint8Array(2 * L + 1);
  for (let q = -L; q <= L; q++) { t[q + L] = f(q); colour[q + L] = Math.round(t[q + L] * 127) + 127; }
  entry.view = { mode, t, colour, low, mid, high };
  return entry.view;
}
const BG = [], FG = [], BG_RGB = [];
for (let q = -127; q <= 127; q++) {
  const t = Math.abs(q) / 127, end = q < 0 ? RED : BLUE;
  const mix = (k) => Math.round(255 + (end[k] - 255) * t);
  BG.push(`rgb(${mix(0)},${mix(1)},${mix(2)})`);
  BG_RGB.push([mix(0), mix(1), mix(2)]);
  FG.push(t > 0.55 ? "#fff" : "#111");
}

function recolour() {
  const entry = track(S.layer, S.unit, S.state), spans = S.spans;
  if (!entry) {
    for (let i = 0; i < N; i++) { spans[i].style.backgroundColor = ""; spans[i].style.color = "#999"; }
    return;
  }
  const { values, levels } = entry, colour = trackView(entry, S.state).colour;
  for (let i = 0; i < N; i++) {
    const style = spans[i].style, c = colour[values[i] + levels];
    style.backgroundColor = BG[c];
    style.color = FG[c];
  }
}
function applyOverlay() {
  const feature = S.features.get(S.feature), spans = S.spans;
  for (let i = 0; i < N; i++) spans[i].classList.toggle("ov", !!feature && feature.labels[i] > 0 && holds(feature, i));
}

// ------------------------------------------------------------ text
function charLabel(ch) {
  if (ch === "\n") return "↵"; if (ch === "\t") return "⇥"; if (ch === " ") return "␣";
  const code = ch.codePointAt(0);
  if (code < 32) return String.fromCharCode(0x2400 + code);
  if (code === 127) return "␡";
  return ch;
}
function buildText(chars) {
  if (chars.length !== N) throw new Error(`the text has ${chars.length} characters, the data ${N}`);
  const box = $("text"), fragment = document.createDocumentFragment();
  box.textContent = ""; S.spans = [];
  S.lineOf = new Int32Array(N); S.colOf = new Int32Array(N); S.lineStart = new Int32Array(N);
  let line = 1, col = 0, lineStart = 0;
  for (let i = 0; i < N; i++) {
    const ch = chars[i], span = document.createElement("span");
    span.ci = i;
    S.lineOf[i] = line; S.colOf[i] = col; S.lineStart[i] = lineStart;
    if (ch === "\n") { span.textContent = "↵\n"; span.className = "nl"; line++; col = 0; lineStart = i + 1; }
    else {
      const code = ch.codePointAt(0);
      span.textContent = (code < 32 && ch !== "\t") || code === 127 ? charLabel(ch) : ch;
      col++;
    }
    S.spans.push(span);
    fragment.append(span);
  }
  box.append(fragment);
  S.chars = chars;
}

// ------------------------------------------------------------ tooltip
const tip = $("tip");
function fmt(v, digits = 3) { return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits); }
function showTip(i, x, y) {
  S.pos = i;
  const ch = S.chars[i];
  const parts = [];
  parts.push(`<div><span class="char">'${escapeHtml(charLabel(ch))}'</span> position ${i.toLocaleString()} · line ${S.lineOf[i]}, col ${S.colOf[i]}` +
             `${S.heldoutStart === null ? " · your text" : i >= S.heldoutStart ? " · held-out" : " · selection"}</div>`);
  const entry = track(S.layer, S.unit, S.state);
  if (entry) {
    const coarse = entry.levels < 127 ? ` <span class="small">(±${(0.5 / entry.levels * (S.state === "c" ? entry.scale : SIGMOID.has(S.state) ? 0.5 : 1)).toFixed(2)})</span>` : "";
    parts.push(`<div>unit ${S.layer}:${S.unit} <b>${S.state} = ${fmt(realValue(entry, i, S.state))}</b>${coarse}</div>`);
  } else parts.push(`<div class="missing">unit ${S.layer}:${S.unit} ${S.state}: not in this file</div>`);
  const others = D.states.filter((s) => has(S.layer, S.unit, s))
    .map((s) => `${s} ${fmt(realValue(track(S.layer, S.unit, s), i, s), 2)}`);
  if (others.length > 1) parts.push(`<div class="small">${others.join(" · ")}</div>`);
  const labels = [];
  for (const f of S.features.values()) {
    const value = f.labels[i];
    if (!holds(f, i)) continue;
    if (f.kind === "binary") { if (value) labels.push(`<b>${escapeHtml(f.name)}</b>`); }
    else labels.push(`${escapeHtml(f.name)}=${value}`);
  }
  parts.push(`<div>labels: ${labels.length ? labels.join(", ") : "none"}</div>`);
  const k = D.predictions.k, next = i + 1 < S.chars.length ? S.chars[i + 1] : null;
  const rows = [];
  for (let j = 0; j < k; j++) {
    const id = S.predIds[i * k + j], p = S.predProbs[i * k + j] / 255, guess = D.vocab[id];
    const cls = guess === next ? ' class="actual"' : "";
    rows.push(`<tr${cls}><td>'${escapeHtml(charLabel(guess))}'</td><td>${(100 * p).toFixed(1)}%</td>` +
              `<td><span class="bar" style="width:${Math.round(80 * p)}px"></span></td></tr>`);
  }
  const actual = next === null ? "" :
    `<div class="small">actual next '${escapeHtml(charLabel(next))}': ${(100 * S.actual[i] / 255).toFixed(1)}%</div>`;
  parts.push(`<div>next character:</div><table>${rows.join("")}</table>${actual}`);
  tip.innerHTML = parts.join("");
  tip.classList.add("show");
  placeTip(x, y);
  schedulePlot();
}
function placeTip(x, y) {
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let left = x + 14, top = y + 16;
  if (left + w > innerWidth - 4) left = Math.max(4, x - w - 14);
  if (top + h > innerHeight - 4) top = Math.max(4, y - h - 12);
  tip.style.left = left + "px"; tip.style.top = top + "px";
}
function hideTip() { tip.classList.remove("show"); }
function escapeHtml(s) { return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

// ------------------------------------------------------------ plots
let plotPending = false;
function schedulePlot() { if (!plotPending) { plotPending = true; requestAnimationFrame(() => { plotPending = false; drawViews(); }); } }
function sizeCanvas(canvas) {
  const ratio = devicePixelRatio || 1, width = Math.max(50, canvas.clientWidth), height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) { canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return [ctx, width, height];
}
function featureScale(f) { return f.kind === "binary" ? 1 : Math.max(1, f.max); }
function drawRange(canvas, start, stop, bars) {
  // upper part: the unit (bars a character, or per pixel column the range and the mean); lower strip: the feature
  const [ctx, width, height] = sizeCanvas(canvas);
  const entry = track(S.layer, S.unit, S.state), feature = S.features.get(S.feature);
  const count = stop - start, unitHeight = Math.round(height * 0.7), half = unitHeight / 2 - 2, mid = 1 + unitHeight / 2;
  const stripTop = unitHeight + 4, stripHeight = height - stripTop - 1;
  const xOf = (i) => (i - start) / count * width;
  const columns = Math.min(count, Math.floor(width));
  const columnOf = (x) => [start + Math.floor(x / columns * count), start + Math.floor((x + 1) / columns * count)];
  if (feature) {
    const top = featureScale(feature), bottom = Math.min(0, feature.min);
    ctx.fillStyle = "rgba(232,160,0,0.75)";
    for (let x = 0; x < columns; x++) {
      const [a, b] = columnOf(x);
      let peak = bottom;
      for (let i = a; i < Math.max(b, a + 1); i++) if (feature.labels[i] > peak && holds(feature, i)) peak = feature.labels[i];
      const v = (peak - bottom) / (top - bottom || 1);
      if (v > 0) ctx.fillRect(x / columns * width, stripTop + stripHeight * (1 - v), width / columns + 0.4, stripHeight * v);
    }
  }
  ctx.fillStyle = "#f3f3f3"; ctx.fillRect(0, mid, width, 1);
  ctx.fillStyle = "#ddd"; ctx.fillRect(0, unitHeight + 2, width, 1);
  const split = S.heldoutStart;
  if (split !== null && split > start && split < stop) {
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#444"; ctx.beginPath(); ctx.moveTo(xOf(split) + 0.5, 0); ctx.lineTo(xOf(split) + 0.5, height); ctx.stroke(); ctx.setLineDash([]);
  }
  if (entry) {
    const { values, levels } = entry, { t, colour } = trackView(entry, S.state);
    if (bars) {  // one coloured bar a character
      const w = width / count;
      for (let i = start; i < stop; i++) {
        const v = t[values[i] + levels];
        ctx.fillStyle = BG[colour[values[i] + levels]];
        ctx.fillRect(xOf(i), v >= 0 ? mid - v * half : mid, Math.max(1, w - 0.5), Math.max(1, Math.abs(v) * half));
      }
    } else {
      ctx.fillStyle = "rgba(18,52,150,0.18)";
      const means = new Float32Array(columns);
      for (let x = 0; x < columns; x++) {
        const [a, b] = columnOf(x);
        let lo = 1, hi = -1, sum = 0, n = 0;
        for (let i = a; i < Math.max(b, a + 1); i++) { const v = t[values[i] + levels]; if (v < lo) lo = v; if (v > hi) hi = v; sum += v; n++; }
        ctx.fillRect(x / columns * width, mid - hi * half, width / columns + 0.4, Math.max(1, (hi - lo) * half));
        means[x] = sum / n;
      }
      ctx.strokeStyle = "rgb(18,52,150)"; ctx.lineWidth = 1.2; ctx.beginPath();
      for (let x = 0; x < columns; x++) ctx[x ? "lineTo" : "moveTo"]((x + 0.5) / columns * width, mid - means[x] * half);
      ctx.stroke(); ctx.lineWidth = 1;
    }
  }
  if (S.pos !== null && S.pos >= start && S.pos < stop) {
    ctx.fillStyle = "rgba(0,0,0,0.55)"; ctx.fillRect(xOf(S.pos), 0, Math.max(1.5, width / count), height);
  }
  const what = bars ? `characters ${start.toLocaleString()}–${(stop - 1).toLocaleString()}` : `whole text (${N.toLocaleString()} characters)`;
  label(ctx, `${what} · ${entry ? `${S.layer}:${S.unit} ${S.state}` : "unit not in this file"}`, 2);
  if (feature) label(ctx, feature.name, stripTop + 1);
}
function label(ctx, text, top) {  // small text on a white patch, readable over the plot
  ctx.font = "10px ui-monospace, monospace";
  ctx.fillStyle = "rgba(255,255,255,0.8)"; ctx.fillRect(2, top, ctx.measureText(text).width + 4, 11);
  ctx.fillStyle = "#444"; ctx.fillText(text, 4, top + 9);
}
function nearRange() { return windowAround(240); }
function drawPlots() {
  drawRange($("plot-all"), 0, N, false);
  const [start, stop] = nearRange();
  drawRange($("plot-near"), start, stop, true);
}
function plotPosition(canvas, event, start, stop) {
  const rect = canvas.getBoundingClientRect();
  return Math.max(0, Math.min(N - 1, start + Math.floor((event.clientX - rect.left) / rect.width * (stop - start))));
}
function jumpTo(i) {
  S.pos = i;
  for (const span of document.querySelectorAll("#text span.at")) span.classList.remove("at");
  const span = S.spans[i];
  span.classList.add("at");
  const box = $("text");
  box.scrollTop += span.getBoundingClientRect().top - box.getBoundingClientRect().top - box.clientHeight / 3;
  schedulePlot();
}

// ------------------------------------------------------------ saturation scatter
function drawScatters() {
  const box = $("scatters");
  box.textContent = "";
  const layers = R.saturation || [];
  const gates = layers.length ? Object.keys(layers[0].gates) : [];
  if (!gates.length) { box.append(el("div", { class: "small", text: `a ${D.cell.toUpperCase()} has no gates` })); return; }
  box.append(el("div", { class: "small key" }, ...gates.flatMap((g) => {
    const dot = el("span"); dot.style.background = GATE_COLOURS[g]; return [dot, g];
  })));
  S.scatters = [];
  for (const layer of layers) {
    const canvas = el("canvas", { width: 146, height: 146, title: `layer ${layer.layer}` });
    const wrap = el("div", { class: "scatter" }, el("div", { class: "small", text: `layer ${layer.layer}` }), canvas);
    box.append(wrap);
    const entry = { layer, canvas, points: [] };
    canvas.addEventListener("click", (event) => {
      const rect = canvas.getBoundingClientRect(), x = event.clientX - rect.left, y = event.clientY - rect.top;
      let best = null, bestDistance = 49;
      for (const p of entry.points) { const d = (p.x - x) ** 2 + (p.y - y) ** 2; if (d < bestDistance) { best = p; bestDistance = d; } }
      if (best) select(layer.layer, best.unit, best.gate);
    });
    S.scatters.push(entry);
  }
  redrawScatters();
}
function redrawScatters() {
  for (const entry of S.scatters || []) {
    const { layer, canvas } = entry, ctx = canvas.getContext("2d"), size = canvas.width, pad = 14, inner = size - 2 * pad;
    ctx.clearRect(0, 0, size, size);
    ctx.strokeStyle = "#bbb"; ctx.strokeRect(pad + 0.5, pad + 0.5, inner, inner);
    ctx.beginPath(); ctx.moveTo(pad, pad); ctx.lineTo(pad + inner, pad + inner); ctx.strokeStyle = "#eee"; ctx.stroke();
    ctx.fillStyle = "#777"; ctx.font = "9px ui-monospace, monospace";
    ctx.fillText("< 0.1 →", size - pad - 38, size - 3); ctx.save(); ctx.translate(9, pad + 40); ctx.rotate(-Math.PI / 2); ctx.fillText("> 0.9 →", 0, 0); ctx.restore();
    entry.points = [];
    let mine = [];
    for (const [gate, values] of Object.entries(layer.gates)) {
      ctx.fillStyle = GATE_COLOURS[gate] || "#333";
      ctx.globalAlpha = 0.6;
      values.left.forEach((left, unit) => {
        const x = pad + (left ?? 0) * inner, y = pad + inner - (values.right[unit] ?? 0) * inner;
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
        entry.points.push({ x, y, unit, gate });
        if (layer.layer === S.layer && unit === S.unit) mine.push({ x, y, gate });
      });
      ctx.globalAlpha = 1;
    }
    for (const p of mine) {
      ctx.strokeStyle = p.gate === S.state ? "#000" : "#666"; ctx.lineWidth = p.gate === S.state ? 2 : 1;
      ctx.beginPath(); ctx.arc(p.x, p.y, 5, 0, 2 * Math.PI); ctx.stroke(); ctx.lineWidth = 1;
    }
  }
}

// ------------------------------------------------------------ picker, state switch, legend
function unitButtons() {
  const box = $("features");
  for (const [name, feature] of Object.entries(R.features)) {
    const metric = feature.metric === "auroc" ? "AUROC" : "Spearman";
    const head = el("h3", { text: name, title: feature.description });
    const meta = el("div", { class: "meta", text:
      `${feature.kind}: ${metric} on held-out text, passing at ${feature.pass_threshold}; the untrained control's best: ` +
      `${feature.control_best == null ? "–" : feature.control_best.toFixed(3)}` });
    const list = el("div", { class: "units" }, el("div", { class: "unit-head" },
      ...["unit", "±", "held-out", "select", "ablation"].map((text) => el("span", { text }))));
    for (const unit of feature.units) {
      const held = unit.heldout_score, pass = held !== null && held >= feature.pass_threshold;
      const pct = unit.ablation && unit.ablation.random_percentile !== null ? `pct ${Math.round(unit.ablation.random_percentile)}` : "–";
      const button = el("button", { class: "unit", type: "button", "data-unit": key(unit.layer, unit.unit, unit.state), "data-feature": name,
        title: `selection ${unit.score.toFixed(3)}, held-out ${held === null ? "–" : held.toFixed(3)}; sign ${unit.sign > 0 ? "+" : "−"}` +
               (unit.ablation ? `; ablating it changes the loss by ${unit.ablation.target_delta} on target characters, ` +
                `${unit.ablation.other_delta} elsewhere; percentile among ${unit.ablation.random_units} random units: ${unit.ablation.random_percentile}` : ""),
        onclick: () => { S.feature = name; $("overlay").value = name; select(unit.layer, unit.unit, unit.state); } },
        el("span", { text: `${unit.layer}:${unit.unit} ${unit.state}` }),
        el("span", { text: unit.sign > 0 ? "+" : "−" }),
        el("span", { class: pass ? "pass" : "", text: held === null ? "–" : held.toFixed(3) }),
        el("span", { class: "detail", text: unit.score.toFixed(3) }),
        el("span", { class: "detail", text: pct }));
      list.append(button);
    }
    box.append(el("div", { class: "feature" }, head, meta, list));
  }
  for (const [name, reason] of Object.entries(R.skipped_features || {}))
    box.append(el("div", { class: "feature skipped" }, el("h3", { text: name }), el("div", { class: "meta", text: `not scored: ${reason}` })));
}
function stateButtons() {
  const box = $("state-switch");
  for (const state of D.states)
    box.append(el("button", { type: "button", "data-state": state, text: state, title: STATE_HELP[state] || state,
                              onclick: () => select(S.layer, S.unit, state) }));
}
function numberPicker() {
  const layerSelect = $("pick-layer"), stateSelect = $("pick-state"), unitInput = $("pick-unit");
  for (let l = 1; l <= D.layers; l++) layerSelect.append(el("option", { value: l, text: l }));
  for (const state of D.states) stateSelect.append(el("option", { value: state, text: state }));
  unitInput.max = D.hidden - 1;
  const refresh = () => {
    const layer = +layerSelect.value, unit = +unitInput.value;
    for (const option of stateSelect.options) {
      option.disabled = !has(layer, unit, option.value);
      option.textContent = option.value + (option.disabled ? " (not in file)" : "");
    }
  };
  layerSelect.addEventListener("change", refresh); unitInput.addEventListener("input", refresh);
  $("number-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const layer = +layerSelect.value, unit = Math.round(+unitInput.value);
    if (!(unit >= 0 && unit < D.hidden)) { unitInput.setCustomValidity(`units are 0..${D.hidden - 1}`); unitInput.reportValidity(); return; }
    unitInput.setCustomValidity("");
    select(layer, unit, stateSelect.value);
  });
  S.refreshNumberPicker = refresh;
  const cov = D.coverage;
  $("coverage").textContent = `In this file: ${cov.description} (budget ${cov.budget_mb} MB: --html-max-mb). States not in it are greyed out.`;
}
function cScalePicker() {
  const picker = $("c-scale");
  for (const [value, text] of Object.entries(C_SCALES)) picker.append(el("option", { value, text }));
  picker.value = S.cScale;
  picker.addEventListener("change", () => { S.cScale = picker.value; recolour(); legend(); schedulePlot(); saveHash(); });
}
function overlayPicker() {
  const select_ = $("overlay");
  select_.append(el("option", { value: "", text: "nothing" }));
  for (const f of D.features) select_.append(el("option", { value: f.name, text: f.kind === "ordinal" ? `${f.name} > 0` : f.name }));
  select_.addEventListener("change", () => { S.feature = select_.value || null; applyOverlay(); schedulePlot(); saveHash(); });
}
function legend() {
  const entry = track(S.layer, S.unit, S.state);
  $("c-scale-box").hidden = S.state !== "c";
  if (!entry) { $("legend-low").textContent = $("legend-high").textContent = $("legend-note").textContent = ""; return; }
  const view = trackView(entry, S.state);
  let note = `white = ${view.mid}`;
  if (S.state === "c") note += view.mode === "centred" ? " (the median; ends: 98% of characters lie between)" : "";
  else if (S.state === "h" && D.cell === "lstm") note += "; h = o · tanh(c)";
  if (entry.levels < 127) note += `; stored at ${2 * entry.levels + 1} levels`;
  $("legend-low").textContent = view.low; $("legend-high").textContent = view.high; $("legend-note").textContent = note;
}
function select(layer, unit, state) {
  if (!D.states.includes(state)) state = "h";
  S.layer = layer; S.unit = unit; S.state = state;
  $("unit-name").textContent = `layer ${layer} · unit ${unit} · ${STATE_HELP[state] || state}`;
  for (const button of document.querySelectorAll("#state-switch button")) {
    button.disabled = !has(layer, unit, button.dataset.state);
    button.title = button.disabled ? "not in this file: raise --html-max-mb" : STATE_HELP[button.dataset.state];
    button.classList.toggle("active", button.dataset.state === state);
  }
  for (const button of document.querySelectorAll(".unit"))
    button.classList.toggle("active", button.dataset.unit.startsWith(`${layer}:${unit}:`) && button.dataset.feature === S.feature);
  $("pick-layer").value = layer; $("pick-unit").value = unit; $("pick-state").value = state;
  if (S.refreshNumberPicker) S.refreshNumberPicker();
  if (!has(layer, unit, state)) $("unit-name").textContent += " — not in this file (raise --html-max-mb)";
  recolour(); legend(); redrawScatters(); schedulePlot(); saveHash();
  if (S.pos !== null && tip.classList.contains("show")) showTip(S.pos, parseFloat(tip.style.left) - 14, parseFloat(tip.style.top) - 16);
}

// ------------------------------------------------------------ the URL fragment: #u=LAYER:UNIT:STATE&f=FEATURE&c=SCALE&at=POS
function saveHash() {
  const parts = [`u=${key(S.layer, S.unit, S.state)}`];
  if (S.feature) parts.push(`f=${encodeURIComponent(S.feature)}`);
  if (S.cScale !== "centred") parts.push(`c=${S.cScale}`);
  if (S.view && S.view !== "plots") parts.push(`v=${S.view}`);
  if ($("layer-order").value) parts.push(`o=${encodeURIComponent($("layer-order").value)}`);
  try { history.replaceState(null, "", "#" + parts.join("&")); } catch (err) { /* some file:// setups refuse; the page works without */ }
}
function readHash() {
  const out = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    const [k, v] = part.split("=");
    if (k && v !== undefined) out[k] = decodeURIComponent(v);
  }
  return out;
}

// ------------------------------------------------------------ views beside the plots: internals, layer overview, value at an event
function showView(name) {
  S.view = name;
  for (const button of document.querySelectorAll("#view-tabs button")) button.classList.toggle("active", button.dataset.view === name);
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  schedulePlot(); saveHash();
}
function windowAround(span) {  // [start, stop) of span characters around the pointer
  const width = Math.min(N, span), centre = S.pos === null ? 0 : S.pos;
  const start = Math.max(0, Math.min(N - width, centre - (width / 2 | 0)));
  return [start, start + width];
}
function drawViews() {
  if (S.view === "internals") drawInternals();
  else if (S.view === "layer") drawLayer();
  else if (S.view === "event") drawEvent();
  else drawPlots();
}
function rowChar(ch) { return ch === "\n" ? "↵" : ch === "\t" ? "⇥" : charLabel(ch); }

function drawInternals() {  // every state of the selected unit as stacked rows of coloured text over the same characters
  const box = $("internals");
  box.textContent = "";
  const columns = Math.max(20, Math.floor((box.clientWidth - 200) / 7.9));
  const [start, stop] = windowAround(columns);
  for (const state of D.states) {
    const entry = track(S.layer, S.unit, state);
    const name = el("button", { type: "button", class: "row-label" + (state === S.state ? " active" : ""), text: state, "data-state": state,
                                title: `${STATE_HELP[state] || state}: click to make it the main view`, onclick: () => select(S.layer, S.unit, state) });
    const line = el("span", { class: "row-text", "data-state": state });
    let legendText = "not in this file";
    if (entry) {
      const view = trackView(entry, state);
      for (let i = start; i < stop; i++) {
        const c = view.colour[entry.values[i] + entry.levels], span = el("span", { text: rowChar(S.chars[i]) });
        span.style.backgroundColor = BG[c]; span.style.color = FG[c];
        span.title = `${state} = ${fmt(realValue(entry, i, state))} at ${i}`;
        if (i === S.pos) span.className = "at";
        line.append(span);
      }
      legendText = `${view.low} … ${view.mid} … ${view.high}`;
    } else line.append(el("span", { class: "missing", text: "not in this file: raise --html-max-mb, or run the live model on the text" }));
    box.append(el("div", { class: "row" }, name, line, el("span", { class: "small", text: legendText })));
  }
}

function layerOrder() {  // the units of the selected layer, by the chosen feature's held-out score or by number
  const H = D.hidden, order = Array.from({ length: H }, (_, u) => u), by = $("layer-order").value, scores = S.unitScores.get(by);
  if (scores) {
    const base = (D.states.indexOf(S.state) * D.layers + (S.layer - 1)) * H, score = (u) => scores[base + u] === 255 ? -1 : scores[base + u];
    order.sort((a, b) => score(b) - score(a) || a - b);
  }
  return order;
}
function drawLayer() {  // every unit of the layer × the characters around the pointer, as one heat map
  const canvas = $("layer-map"), H = D.hidden;
  canvas.style.height = `${Math.max(120, Math.min(560, H * 3))}px`;
  const [ctx, width, height] = sizeCanvas(canvas);
  const [start, stop] = windowAround(Math.max(20, Math.floor(width / 6)));
  const order = layerOrder(), count = stop - start, image = new ImageData(count, H);
  let absent = 0;
  order.forEach((unit, row) => {
    const entry = track(S.layer, unit, S.state);
    if (!entry) absent++;
    const view = entry ? trackView(entry, S.state) : null;
    for (let i = start; i < stop; i++) {
      const k = 4 * (row * count + i - start);
      if (view) { const rgb = BG_RGB[view.colour[entry.values[i] + entry.levels]]; image.data[k] = rgb[0]; image.data[k + 1] = rgb[1]; image.data[k + 2] = rgb[2]; }
      else { const stripe = (i + row) % 4 < 2 ? 226 : 238; image.data[k] = image.data[k + 1] = image.data[k + 2] = stripe; }  // absent: hatched grey
      image.data[k + 3] = 255;
    }
  });
  const bitmap = document.createElement("canvas");
  bitmap.width = count; bitmap.height = H;
  bitmap.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap, 0, 0, width, height);
  const rowHeight = height / H, columnWidth = width / count, mine = order.indexOf(S.unit);
  ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5; ctx.strokeRect(0.75, mine * rowHeight, width - 1.5, Math.max(2, rowHeight)); ctx.lineWidth = 1;
  if (S.pos !== null && S.pos >= start && S.pos < stop) { ctx.fillStyle = "rgba(0,0,0,0.45)"; ctx.fillRect((S.pos - start) * columnWidth, 0, Math.max(1.5, columnWidth / 3), height); }
  S.layerMap = { order, rowHeight, start, columnWidth };
  const by = $("layer-order").value;
  $("layer-note").textContent = `layer ${S.layer} · ${S.state} · ${H} units (${by ? `best ${by} score at the top` : "unit 0 at the top"}) × characters ` +
    `${start.toLocaleString()}–${(stop - 1).toLocaleString()}${absent ? ` · ${absent} units not in this file (hatched)` : ""} · click a row to select its unit`;
}
function layerRowAt(event) {
  const map = S.layerMap, rect = $("layer-map").getBoundingClientRect();
  if (!map) return null;
  const row = Math.floor((event.clientY - rect.top) / map.rowHeight), i = map.start + Math.floor((event.clientX - rect.left) / map.columnWidth);
  return row >= 0 && row < map.order.length ? { unit: map.order[row], i: Math.max(0, Math.min(N - 1, i)) } : null;
}

function eventChar() {
  const raw = $("event-char").value;
  if (raw === "" || raw === "\\n") return "\n";
  if (raw === "\\t") return "\t";
  return Array.from(raw)[0];
}
function drawEvent() {  // the selected unit at every occurrence of a character, one row per group, as a strip plot
  const canvas = $("event-plot"), target = eventChar(), byLine = $("event-group").value === "line";
  const back = Math.max(1, Math.round(+$("event-back").value) || 1), entry = track(S.layer, S.unit, S.state);
  $("event-back-box").hidden = byLine;
  const groups = new Map();
  let events = 0;
  for (let i = 0; i < N; i++) {
    if (S.chars[i] !== target) continue;
    const j = byLine ? S.lineStart[i] : i - back, group = j >= 0 ? S.chars[j] : "(start)";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(i);
    events++;
  }
  let rows = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  if (rows.length > 16) rows = [...rows.slice(0, 15), ["(other)", rows.slice(15).flatMap((r) => r[1])]];
  rows.sort((a, b) => (a[0] === "(other)") - (b[0] === "(other)") || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  canvas.style.height = `${Math.max(60, 24 + 20 * rows.length)}px`;
  const [ctx, width, height] = sizeCanvas(canvas);
  S.eventDots = [];
  const note = $("event-note");
  if (!entry || !events) {
    note.textContent = !entry ? `${S.layer}:${S.unit} ${S.state} is not in this file` : `no '${rowChar(target)}' in the text`;
    return;
  }
  let low = Infinity, high = -Infinity;
  for (const [, positions] of rows) for (const i of positions) { const v = realValue(entry, i, S.state); if (v < low) low = v; if (v > high) high = v; }
  if (SIGMOID.has(S.state)) { low = Math.min(low, 0); high = Math.max(high, 1); } else if (S.state !== "c") { low = Math.min(low, -1); high = Math.max(high, 1); }
  if (!(high > low)) { low -= 1; high += 1; }
  const left = 70, right = width - 10, xOf = (v) => left + (v - low) / (high - low) * (right - left);
  ctx.font = "11px ui-monospace, monospace";
  ctx.fillStyle = "#999"; ctx.fillText(low.toFixed(2), left, height - 4); ctx.fillText(high.toFixed(2), right - 30, height - 4);
  if (low < 0 && high > 0) { ctx.fillStyle = "#eee"; ctx.fillRect(xOf(0), 0, 1, height - 16); }
  rows.forEach(([group, positions], r) => {
    const y = 12 + 20 * r;
    ctx.fillStyle = "#333";
    ctx.fillText(`${group.length === 1 ? `'${rowChar(group)}'` : group} ${positions.length}`, 4, y + 4);
    for (const i of positions) {
      const x = xOf(realValue(entry, i, S.state)), jitter = ((i * 2654435761) % 1000) / 1000 * 10 - 5, dotY = y + jitter;
      ctx.fillStyle = i === S.pos ? "#000" : "rgba(18,52,150,0.55)";
      ctx.fillRect(x - 1.5, dotY - 1.5, 3, 3);
      S.eventDots.push({ x, y: dotY, i });
    }
  });
  note.textContent = `${events.toLocaleString()} × '${rowChar(target)}', ${S.layer}:${S.unit} ${S.state} after reading it, grouped by ` +
    (byLine ? "the first character of its line" : `the character ${back} before`) + " · hover a dot to go there";
}
function eventDotAt(event) {
  const rect = $("event-plot").getBoundingClientRect(), x = event.clientX - rect.left, y = event.clientY - rect.top;
  let best = null, bestDistance = 36;
  for (const dot of S.eventDots || []) { const d = (dot.x - x) ** 2 + (dot.y - y) ** 2; if (d < bestDistance) { best = dot; bestDistance = d; } }
  return best;
}
function viewControls() {
  for (const button of document.querySelectorAll("#view-tabs button")) button.addEventListener("click", () => showView(button.dataset.view));
  const order = $("layer-order");
  order.append(el("option", { value: "", text: "unit number" }));
  for (const name of S.unitScores.keys()) order.append(el("option", { value: name, text: `${name} score` }));
  order.addEventListener("change", () => { schedulePlot(); saveHash(); });
  const map = $("layer-map");
  map.addEventListener("click", (event) => { const at = layerRowAt(event); if (at) select(S.layer, at.unit, S.state); });
  map.addEventListener("mousemove", (event) => {
    const at = layerRowAt(event), entry = at && track(S.layer, at.unit, S.state);
    map.title = at ? `unit ${S.layer}:${at.unit} ${S.state}` + (entry ? ` = ${fmt(realValue(entry, at.i, S.state))} at ${at.i}` : " (not in this file)") : "";
  });
  for (const id of ["event-char", "event-group", "event-back"]) $(id).addEventListener("input", schedulePlot);
  $("event-plot").addEventListener("mousemove", (event) => { const dot = eventDotAt(event); if (dot && dot.i !== S.pos) jumpTo(dot.i); });
}

// ------------------------------------------------------------ search
function searchHits(query) {
  const q = Array.from(query), hits = [];
  if (!q.length) return hits;
  outer: for (let i = 0; i + q.length <= N; i++) {
    for (let k = 0; k < q.length; k++) if (S.chars[i + k] !== q[k]) continue outer;
    hits.push(i);
  }
  return hits;
}
function clearSearch() {
  for (const span of document.querySelectorAll("#text span.hit")) span.classList.remove("hit");
  S.search = { query: null, hits: [], at: -1 };
  $("search-count").textContent = "";
}
function stepSearch(direction) {
  const query = $("search").value;
  if (query !== S.search.query) {
    clearSearch();
    S.search = { query, hits: searchHits(query), at: direction > 0 ? -1 : 0 };
    const length = Array.from(query).length;
    for (const start of S.search.hits.slice(0, 20000)) for (let k = start; k < start + length; k++) S.spans[k].classList.add("hit");
  }
  const { hits } = S.search;
  if (!query) return;
  if (!hits.length) { $("search-count").textContent = "no match"; return; }
  S.search.at = (S.search.at + direction + hits.length) % hits.length;
  $("search-count").textContent = `${S.search.at + 1} of ${hits.length.toLocaleString()}`;
  jumpTo(hits[S.search.at]);
}
function searchControls() {
  clearSearch();
  $("search").addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); stepSearch(event.shiftKey ? -1 : 1); } });
  $("search").addEventListener("input", () => { if (!$("search").value) clearSearch(); });
  $("search-next").addEventListener("click", () => stepSearch(1));
  $("search-prev").addEventListener("click", () => stepSearch(-1));
}

// ------------------------------------------------------------ the live model: charnn's forward pass in a Web Worker, on the user's text
const Live = { worker: null, calls: new Map(), next: 1, ready: null, seed: 0, vocab: null };
function halfTable() {  // float16 bits -> value
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
    table[bits] = exponent === 0 ? sign * mantissa * 2 ** -24 : exponent === 31 ? (mantissa ? NaN : sign * Infinity)
                : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return table;
}
async function liveWeights(model) {
  const half = halfTable(), weights = { layers: Array.from({ length: model.layers }, () => ({})) };
  for (const tensor of model.tensors) {
    const bytes = await unpack(tensor.data), size = tensor.shape.reduce((a, b) => a * b, 1), values = new Float32Array(size);
    if (tensor.dtype === "int8") {
      const q = new Int8Array(bytes.buffer, bytes.byteOffset, size), scales = new Float32Array((await unpack(tensor.scales)).slice().buffer);
      const columns = tensor.shape[1];
      for (let k = 0; k < size; k++) values[k] = q[k] * scales[(k / columns) | 0];
    } else {
      const bits = new Uint16Array(bytes.slice().buffer);
      for (let k = 0; k < size; k++) values[k] = half[bits[k]];
    }
    const layer = tensor.name.match(/^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$/);
    if (layer) weights.layers[+layer[2]][layer[1]] = values;
    else weights[tensor.name.replace(".", "_")] = values;
  }
  return weights;
}
function liveCall(op, payload, progress) {
  const id = Live.next++;
  return new Promise((resolve, reject) => {
    Live.calls.set(id, { resolve, reject, progress });
    Live.worker.postMessage({ op, id, ...payload });
  });
}
async function startLive() {
  const model = D.live;
  Live.vocab = new Map(D.vocab.slice(0, -1).map((ch, id) => [ch, id]));
  const source = new Blob([$("charnn-worker").textContent], { type: "text/javascript" });
  Live.worker = new Worker(URL.createObjectURL(source));
  Live.worker.onmessage = (event) => {
    const { id, result, error, progress } = event.data, call = Live.calls.get(id);
    if (!call) return;
    if (progress !== undefined) { if (call.progress) call.progress(progress); return; }
    Live.calls.delete(id);
    if (error) call.reject(new Error(error)); else call.resolve(result);
  };
  Live.worker.onerror = (event) => { liveStatus(`the live model stopped: ${event.message}`); };
  const weights = await liveWeights(model);
  await liveCall("load", { model: { cell: model.cell, layers: model.layers, hidden: model.hidden, embed: model.embed,
                                    vocab_size: model.vocab_size, unknown_id: model.unknown_id, weights } });
}
function liveStatus(text) { $("live-status").textContent = text; }
function liveIds(chars) {
  const ids = new Int32Array(chars.length);
  let unknown = 0;
  chars.forEach((ch, t) => { const id = Live.vocab.get(ch); if (id === undefined) unknown++; ids[t] = id === undefined ? D.live.unknown_id : id; });
  return { ids, unknown };
}
function quantised(real, state) {  // the live values as the page's int8 tracks (drawing) beside the float values (reading)
  const values = new Int8Array(real.length);
  let scale = 1;
  if (state === "c") { scale = 0; for (const v of real) scale = Math.max(scale, Math.abs(v)); scale = scale || 1; }
  for (let i = 0; i < real.length; i++) {
    const v = SIGMOID.has(state) ? 2 * real[i] - 1 : state === "c" ? real[i] / scale : real[i];
    values[i] = Math.max(-127, Math.min(127, Math.round(v * 127)));
  }
  return { values, levels: 127, scale, real, view: null };
}
async function runLive(text) {
  await Live.ready;
  let chars = Array.from(text);
  const cut = chars.length > D.live.max_chars;
  if (cut) chars = chars.slice(0, D.live.max_chars);
  if (!chars.length) { liveStatus("type some text first"); return null; }
  const { ids, unknown } = liveIds(chars);
  liveStatus(`running the model on ${chars.length.toLocaleString()} characters…`);
  const k = D.predictions.k;
  const out = await liveCall("run", { ids, k }, (share) => liveStatus(`running the model: ${Math.round(100 * share)}%`));
  const T = chars.length, L = D.layers, H = D.hidden, tracks = new Map();
  out.names.forEach((state, s) => {
    const all = out.states[s];
    for (let l = 0; l < L; l++) for (let u = 0; u < H; u++) {
      const real = new Float32Array(T);
      for (let t = 0; t < T; t++) real[t] = all[(t * L + l) * H + u];
      tracks.set(key(l + 1, u, state), quantised(real, state));
    }
  });
  const predIds = new Uint16Array(T * k), predProbs = new Uint8Array(T * k), actual = new Uint8Array(T);
  for (let j = 0; j < T * k; j++) { predIds[j] = out.topIds[j]; predProbs[j] = Math.round(out.topProbs[j] * 255); }
  for (let t = 0; t < T; t++) actual[t] = Math.round(out.actual[t] * 255);
  const shown = chars.map((ch, t) => ids[t] === D.live.unknown_id ? D.vocab[D.vocab.length - 1] : ch);
  setSource({ name: "your text", chars: shown, tracks, predIds, predProbs, actual, features: new Map(), heldoutStart: null,
              probs: out.topProbs, ids: out.topIds });
  const rate = T / Math.max(out.seconds, 1e-3);
  liveStatus(`your text: ${T.toLocaleString()} characters in ${out.seconds.toFixed(2)} s (${Math.round(rate).toLocaleString()} characters/s, ` +
             `${D.live.precision} weights)` + (unknown ? `; ${unknown} outside the vocabulary, read as unknown (shown ${D.vocab[D.vocab.length - 1]})` : "") +
             (cut ? `; only the first ${D.live.max_chars.toLocaleString()} characters` : "") + ". No labels here: the features belong to the probed text.");
  Live.last = { seconds: out.seconds, chars: T, rate, unknown, topIds: out.topIds, topProbs: out.topProbs };
  return Live.last;
}
async function sampleLive() {
  await Live.ready;
  const text = $("live-text").value || "\n", chars = Array.from(text), { ids } = liveIds(chars);
  const count = Math.max(1, Math.min(2000, Math.round(+$("live-count").value) || 200));
  const temperature = Math.max(0.05, Math.min(3, +$("live-temp").value || 0.8)), seed = Live.seed++;
  liveStatus(`sampling ${count} characters at temperature ${temperature}…`);
  const out = await liveCall("sample", { ids, count, temperature, seed });
  $("live-text").value = text + Array.from(out.ids, (id) => D.vocab[id]).join("");
  const done = await runLive($("live-text").value);
  if (done) liveStatus(`sampled ${count} characters at temperature ${temperature} (seed ${seed}); ` + $("live-status").textContent);
  return $("live-text").value;
}
function setSource(source) {
  if (!S.probed) S.probed = { name: "probed", chars: S.chars, tracks: S.tracks, predIds: S.predIds, predProbs: S.predProbs, actual: S.actual,
                              features: S.features, heldoutStart: S.heldoutStart };
  N = source.chars.length;
  Object.assign(S, { tracks: source.tracks, predIds: source.predIds, predProbs: source.predProbs, actual: source.actual,
                     features: source.features, heldoutStart: source.heldoutStart, source: source.name, pos: null });
  hideTip();
  clearSearch();
  buildText(source.chars);
  applyOverlay();
  $("live-back").hidden = source === S.probed;
  select(S.layer, S.unit, S.state);
}
function liveControls() {
  if (!D.live) { $("live-off").textContent = D.live_note || "this page has no live model"; return; }
  $("live-on").hidden = false;
  $("live-off").textContent = `The model (${D.live.precision} weights) runs in this page: type any text, then run it or sample from it.`;
  Live.ready = startLive().catch((err) => { liveStatus(`the live model could not start: ${err.message}`); throw err; });
  const guard = (work) => () => work().catch((err) => liveStatus(`the live model failed: ${err.message}`));
  $("live-run").addEventListener("click", guard(() => runLive($("live-text").value)));
  $("live-sample").addEventListener("click", guard(sampleLive));
  $("live-back").addEventListener("click", () => { setSource(S.probed); liveStatus(""); });
}

function summary() {
  const m = R.model, t = R.text;
  const parts = [`${m.cell.toUpperCase()} ${m.layers}×${m.hidden} (${m.parameters.toLocaleString()} parameters)`];
  if (m.checkpoint) parts.push(`${m.checkpoint}${m.step != null ? ` step ${m.step}` : ""}`);
  if (m.corpus) parts.push(`trained on ${m.corpus}`);
  parts.push(`text ${t.path || ""} ${D.chars.toLocaleString()} characters shown` + (D.probed_chars !== D.chars ? ` of ${D.probed_chars.toLocaleString()} probed` : ""));
  parts.push(`units chosen on characters 0–${(R.split.selection.stop - 1).toLocaleString()}, scored on the held-out rest`);
  parts.push("layers count from 1");
  $("summary").textContent = parts.join(" · ");
  for (const note of D.notes) $("notes").append(el("li", { text: note }));
}

async function main() {
  await load();
  const wanted = readHash();
  summary();
  $("keys").textContent = D.states.join(" ");
  buildText(Array.from(D.text));
  unitButtons(); stateButtons(); numberPicker(); overlayPicker(); drawScatters(); viewControls(); searchControls(); liveControls();
  if (C_SCALES[wanted.c]) S.cScale = wanted.c;
  cScalePicker();
  const text = $("text");
  text.addEventListener("mouseover", (event) => { const i = event.target.ci; if (i !== undefined) showTip(i, event.clientX, event.clientY); });
  text.addEventListener("mousemove", (event) => { if (tip.classList.contains("show")) placeTip(event.clientX, event.clientY); });
  text.addEventListener("mouseleave", hideTip);
  text.addEventListener("scroll", hideTip);
  const all = $("plot-all"), near = $("plot-near");
  all.addEventListener("click", (event) => jumpTo(plotPosition(all, event, 0, N)));
  near.addEventListener("click", (event) => { const [a, b] = nearRange(); jumpTo(plotPosition(near, event, a, b)); });
  addEventListener("resize", schedulePlot);
  addEventListener("keydown", (event) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (D.states.includes(event.key) && has(S.layer, S.unit, event.key)) select(S.layer, S.unit, event.key);
  });
  // the first unit shown: the URL's, else the best-scoring flagged unit of the first feature that has one
  let first = null;
  for (const [name, feature] of Object.entries(R.features)) if (feature.units.length) { first = { ...feature.units[0], feature: name }; break; }
  let layer = first ? first.layer : 1, unit = first ? first.unit : 0, state = first ? first.state : "h";
  S.feature = first ? first.feature : null;
  if (wanted.u) {
    const [l, u, s] = wanted.u.split(":");
    if (+l >= 1 && +l <= D.layers && +u >= 0 && +u < D.hidden) { layer = +l; unit = +u; state = s || "h"; }
  }
  if (wanted.f !== undefined) S.feature = S.features.has(wanted.f) ? wanted.f : null;
  $("overlay").value = S.feature || "";
  applyOverlay();
  select(layer, unit, state);
  if (wanted.at !== undefined && +wanted.at >= 0 && +wanted.at < N) jumpTo(+wanted.at);
  if (wanted.o !== undefined && S.unitScores.has(wanted.o)) $("layer-order").value = wanted.o;
  if (["internals", "layer", "event"].includes(wanted.v)) showView(wanted.v);
  drawViews();
  window.charnnExplorer = {  // for tests and the console
    loadMs: performance.now(), state: S, select, showView, runLive, sampleLive, live: Live, back: () => S.probed && setSource(S.probed),
    value: (layer, unit, state, i) => { const entry = track(layer, unit, state); return entry ? realValue(entry, i, state) : null; },
  };
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  document.body.prepend(el("div", { id: "fatal", text: `The explorer could not start: ${err.message}` }));
  console.error(err);
});
})();
