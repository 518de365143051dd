// The plots of the unit over the text and around the pointer, and the gate-saturation scatter.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
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
  const entry = track(current.layer, current.unit, current.state), feature = current.features.get(current.feature);
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
  const split = current.heldoutStart;
  if (split !== null && split > start && split < stop) {
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#444"; ctx.beginPath(); ctx.moveTo(xOf(split) + 0.5, 0); ctx.lineTo(xOf(split) + 0.5, height); ctx.stroke(); ctx.setLineDash([]);
  }
  if (entry) {
    const { values, levels } = entry, { t, colour } = trackView(entry, current.state);
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
  if (current.pos !== null && current.pos >= start && current.pos < stop) {
    ctx.fillStyle = "rgba(0,0,0,0.55)"; ctx.fillRect(xOf(current.pos), 0, Math.max(1.5, width / count), height);
  }
  const what = bars ? `characters ${start.toLocaleString()}–${(stop - 1).toLocaleString()}` : `whole text (${shownChars.toLocaleString()} characters)`;
  label(ctx, `${what} · ${entry ? `${current.layer}:${current.unit} ${current.state}` : "unit not in this file"}`, 2);
  if (feature) label(ctx, feature.name, stripTop + 1);
}
function label(ctx, text, top) {  // small text on a white patch, readable over the plot
  ctx.font = "10px ui-monospace, monospace";
  ctx.fillStyle = "rgba(255,255,255,0.8)"; ctx.fillRect(2, top, ctx.measureText(text).width + 4, 11);
  ctx.fillStyle = "#444"; ctx.fillText(text, 4, top + 9);
}
function nearRange() { return windowAround(240); }
function drawPlots() {
  drawRange(byId("plot-all"), 0, shownChars, false);
  const [start, stop] = nearRange();
  drawRange(byId("plot-near"), start, stop, true);
}
function plotPosition(canvas, event, start, stop) {
  const rect = canvas.getBoundingClientRect();
  return Math.max(0, Math.min(shownChars - 1, start + Math.floor((event.clientX - rect.left) / rect.width * (stop - start))));
}
function jumpTo(i) {
  current.pos = i;
  for (const span of document.querySelectorAll("#text span.at")) span.classList.remove("at");
  const span = current.spans[i];
  span.classList.add("at");
  const box = byId("text");
  box.scrollTop += span.getBoundingClientRect().top - box.getBoundingClientRect().top - box.clientHeight / 3;
  schedulePlot();
}

// ------------------------------------------------------------ saturation scatter
function drawScatters() {
  const box = byId("scatters");
  box.textContent = "";
  const layers = probeReport.saturation || [];
  const gates = layers.length ? Object.keys(layers[0].gates) : [];
  if (!gates.length) { box.append(el("div", { class: "small", text: `a ${pageData.cell.toUpperCase()} has no gates` })); return; }
  box.append(el("div", { class: "small key" }, ...gates.flatMap((g) => {
    const dot = el("span"); dot.style.background = GATE_COLOURS[g]; return [dot, g];
  })));
  current.scatters = [];
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
    current.scatters.push(entry);
  }
  redrawScatters();
}
function redrawScatters() {
  for (const entry of current.scatters || []) {
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
        if (layer.layer === current.layer && unit === current.unit) mine.push({ x, y, gate });
      });
      ctx.globalAlpha = 1;
    }
    for (const p of mine) {
      ctx.strokeStyle = p.gate === current.state ? "#000" : "#666"; ctx.lineWidth = p.gate === current.state ? 2 : 1;
      ctx.beginPath(); ctx.arc(p.x, p.y, 5, 0, 2 * Math.PI); ctx.stroke(); ctx.lineWidth = 1;
    }
  }
}
