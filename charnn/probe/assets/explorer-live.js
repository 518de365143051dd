// The live model: charnn's forward pass in a Web Worker, on the user's text.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
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
  const model = pageData.live;
  Live.vocab = new Map(pageData.vocab.slice(0, -1).map((ch, id) => [ch, id]));
  const source = new Blob([byId("charnn-worker").textContent], { type: "text/javascript" });
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
function liveStatus(text) { byId("live-status").textContent = text; }
function liveIds(chars) {
  const ids = new Int32Array(chars.length);
  let unknown = 0;
  chars.forEach((ch, t) => { const id = Live.vocab.get(ch); if (id === undefined) unknown++; ids[t] = id === undefined ? pageData.live.unknown_id : id; });
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
  const cut = chars.length > pageData.live.max_chars;
  if (cut) chars = chars.slice(0, pageData.live.max_chars);
  if (!chars.length) { liveStatus("type some text first"); return null; }
  const { ids, unknown } = liveIds(chars);
  liveStatus(`running the model on ${chars.length.toLocaleString()} characters…`);
  const k = pageData.predictions.k;
  const out = await liveCall("run", { ids, k }, (share) => liveStatus(`running the model: ${Math.round(100 * share)}%`));
  const T = chars.length, L = pageData.layers, H = pageData.hidden, tracks = new Map();
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
  const shown = chars.map((ch, t) => ids[t] === pageData.live.unknown_id ? pageData.vocab[pageData.vocab.length - 1] : ch);
  setSource({ name: "your text", chars: shown, tracks, predIds, predProbs, actual, features: new Map(), heldoutStart: null,
              probs: out.topProbs, ids: out.topIds });
  const rate = T / Math.max(out.seconds, 1e-3);
  liveStatus(`your text: ${T.toLocaleString()} characters in ${out.seconds.toFixed(2)} s (${Math.round(rate).toLocaleString()} characters/s, ` +
             `${pageData.live.precision} weights)` + (unknown ? `; ${unknown} outside the vocabulary, read as unknown (shown ${pageData.vocab[pageData.vocab.length - 1]})` : "") +
             (cut ? `; only the first ${pageData.live.max_chars.toLocaleString()} characters` : "") + ". No labels here: the features belong to the probed text.");
  Live.last = { seconds: out.seconds, chars: T, rate, unknown, topIds: out.topIds, topProbs: out.topProbs };
  return Live.last;
}
async function sampleLive() {
  await Live.ready;
  const text = byId("live-text").value || "\n", chars = Array.from(text), { ids } = liveIds(chars);
  const count = Math.max(1, Math.min(2000, Math.round(+byId("live-count").value) || 200));
  const temperature = Math.max(0.05, Math.min(3, +byId("live-temp").value || 0.8)), seed = Live.seed++;
  liveStatus(`sampling ${count} characters at temperature ${temperature}…`);
  const out = await liveCall("sample", { ids, count, temperature, seed });
  byId("live-text").value = text + Array.from(out.ids, (id) => pageData.vocab[id]).join("");
  const done = await runLive(byId("live-text").value);
  if (done) liveStatus(`sampled ${count} characters at temperature ${temperature} (seed ${seed}); ` + byId("live-status").textContent);
  return byId("live-text").value;
}
function setSource(source) {
  if (!current.probed) current.probed = { name: "probed", chars: current.chars, tracks: current.tracks, predIds: current.predIds, predProbs: current.predProbs, actual: current.actual,
                              features: current.features, heldoutStart: current.heldoutStart };
  shownChars = source.chars.length;
  Object.assign(current, { tracks: source.tracks, predIds: source.predIds, predProbs: source.predProbs, actual: source.actual,
                     features: source.features, heldoutStart: source.heldoutStart, source: source.name, pos: null });
  hideTip();
  clearSearch();
  buildText(source.chars);
  applyOverlay();
  byId("live-back").hidden = source === current.probed;
  select(current.layer, current.unit, current.state);
}
function liveControls() {
  if (!pageData.live) { byId("live-off").textContent = pageData.live_note || "this page has no live model"; return; }
  byId("live-on").hidden = false;
  byId("live-off").textContent = `The model (${pageData.live.precision} weights) runs in this page: type any text, then run it or sample from it.`;
  Live.ready = startLive().catch((err) => { liveStatus(`the live model could not start: ${err.message}`); throw err; });
  const guard = (work) => () => work().catch((err) => liveStatus(`the live model failed: ${err.message}`));
  byId("live-run").addEventListener("click", guard(() => runLive(byId("live-text").value)));
  byId("live-sample").addEventListener("click", guard(sampleLive));
  byId("live-back").addEventListener("click", () => { setSource(current.probed); liveStatus(""); });
}

function summary() {
  const m = probeReport.model, t = probeReport.text;
  const parts = [`${m.cell.toUpperCase()} ${m.layers}×${m.hidden} (${m.parameters.toLocaleString()} parameters)`];
  if (m.checkpoint) parts.push(`${m.checkpoint}${m.step != null ? ` step ${m.step}` : ""}`);
  if (m.corpus) parts.push(`trained on ${m.corpus}`);
  parts.push(`text ${t.path || ""} ${pageData.chars.toLocaleString()} characters shown` + (pageData.probed_chars !== pageData.chars ? ` of ${pageData.probed_chars.toLocaleString()} probed` : ""));
  parts.push(`units chosen on characters 0–${(probeReport.split.selection.stop - 1).toLocaleString()}, scored on the held-out rest`);
  parts.push("layers count from 1");
  byId("summary").textContent = parts.join(" · ");
  for (const note of pageData.notes) byId("notes").append(el("li", { text: note }));
}
