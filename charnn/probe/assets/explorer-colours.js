// A unit's stored steps as values and as colours, red -1, white 0, blue +1.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
// ------------------------------------------------------------ values and colours
function key(layer, unit, state) { return `${layer}:${unit}:${state}`; }
const has = (layer, unit, state) => current.tracks.has(key(layer, unit, state));
const track = (layer, unit, state) => current.tracks.get(key(layer, unit, state)) || null;
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
  const mode = state === "c" ? current.cScale : SIGMOID.has(state) ? "gate" : "plain";
  if (entry.view && entry.view.mode === mode) return entry.view;
  const L = entry.levels, t = new Float32Array(2 * L + 1), real = (q) => q / L * entry.scale;
  let low = "−1", mid = "0", high = "+1", f = (q) => q / L;
  if (mode === "gate") { low = "0 shut"; mid = "0.5"; high = "1 open"; }
  else if (mode === "max") { low = (-entry.scale).toFixed(2); high = "+" + entry.scale.toFixed(2); }
  else if (mode === "tanh") { f = (q) => Math.tanh(real(q)); low = "tanh −1"; high = "tanh +1"; }
  else if (mode === "centred") {  // median and spread from a histogram of the stored steps
    const counts = new Int32Array(2 * L + 1), values = entry.values;
    for (let i = 0; i < shownChars; i++) counts[values[i] + L]++;
    let seen = 0, median = 0;
    for (let q = 0; q <= 2 * L; q++) { seen += counts[q]; if (seen * 2 >= shownChars) { median = q - L; break; } }
    const distance = new Int32Array(2 * L + 1);
    for (let q = 0; q <= 2 * L; q++) distance[Math.abs(q - L - median)] += counts[q];
    let spread = 1;
    for (let d = 0, seenFar = 0; d <= 2 * L; d++) { seenFar += distance[d]; if (seenFar >= 0.98 * shownChars) { spread = Math.max(1, d); break; } }
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
  const entry = track(current.layer, current.unit, current.state), spans = current.spans;
  if (!entry) {
    for (let i = 0; i < shownChars; i++) { spans[i].style.backgroundColor = ""; spans[i].style.color = "#999"; }
    return;
  }
  const { values, levels } = entry, colour = trackView(entry, current.state).colour;
  for (let i = 0; i < shownChars; i++) {
    const style = spans[i].style, c = colour[values[i] + levels];
    style.backgroundColor = BG[c];
    style.color = FG[c];
  }
}
function applyOverlay() {
  const feature = current.features.get(current.feature), spans = current.spans;
  for (let i = 0; i < shownChars; i++) spans[i].classList.toggle("ov", !!feature && feature.labels[i] > 0 && holds(feature, i));
}
