"use strict";
// The explorer's live model: charnn's forward pass written out for a Web Worker, so that the page stays
// responsive while it runs. It follows torch's cells exactly (gate order LSTM i, f, g, o; GRU r, z, n)
// and records, after each character, every state of every unit, as charnn.probe.record does.
// Messages: {op: "load", model} once, then {op: "run", ids} or {op: "sample", ids, count, temperature, seed}.

let network = null;
const sigmoid = (x) => 1 / (1 + Math.exp(-x));
const STATE_NAMES = { lstm: ["h", "c", "i", "f", "g", "o"], gru: ["h", "r", "z", "n"], rnn: ["h"] };
const GATE_COUNT = { lstm: 4, gru: 3, rnn: 1 };

function load(model) {
  const G = GATE_COUNT[model.cell], H = model.hidden;
  network = { ...model, G, H, V: model.vocab_size,
        h: Array.from({ length: model.layers }, () => new Float64Array(H)),
        c: Array.from({ length: model.layers }, () => new Float64Array(H)),
        gi: new Float64Array(G * H), gh: new Float64Array(G * H), logits: new Float64Array(model.vocab_size) };
}

function affine(W, b, rows, cols, x, out) {  // out = W x + b, W row-major (rows, cols); four sums for the CPU's pipelines
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = 0;
    for (; k + 3 < cols; k += 4) {
      s0 += W[base + k] * x[k]; s1 += W[base + k + 1] * x[k + 1];
      s2 += W[base + k + 2] * x[k + 2]; s3 += W[base + k + 3] * x[k + 3];
    }
    for (; k < cols; k++) s0 += W[base + k] * x[k];
    out[r] = b[r] + ((s0 + s1) + (s2 + s3));
  }
}

function reset() { for (let l = 0; l < network.layers; l++) { network.h[l].fill(0); network.c[l].fill(0); } }

// One character: the new state of every layer, the logits of the next character; record(l, name, k, v) sees every value.
function step(id, record) {
  const { H, G, gi, gh } = network;
  let x = network.weights.embedding.subarray(id * network.embed, (id + 1) * network.embed);
  for (let l = 0; l < network.layers; l++) {
    const w = network.weights.layers[l], h = network.h[l], c = network.c[l], inputs = l === 0 ? network.embed : H;
    affine(w.weight_ih, w.bias_ih, G * H, inputs, x, gi);
    affine(w.weight_hh, w.bias_hh, G * H, H, h, gh);
    if (network.cell === "lstm") {
      for (let k = 0; k < H; k++) {
        const i = sigmoid(gi[k] + gh[k]), f = sigmoid(gi[H + k] + gh[H + k]);
        const g = Math.tanh(gi[2 * H + k] + gh[2 * H + k]), o = sigmoid(gi[3 * H + k] + gh[3 * H + k]);
        c[k] = f * c[k] + i * g;
        h[k] = o * Math.tanh(c[k]);
        if (record) { record(l, 0, k, h[k]); record(l, 1, k, c[k]); record(l, 2, k, i); record(l, 3, k, f); record(l, 4, k, g); record(l, 5, k, o); }
      }
    } else if (network.cell === "gru") {
      for (let k = 0; k < H; k++) {
        const r = sigmoid(gi[k] + gh[k]), z = sigmoid(gi[H + k] + gh[H + k]);
        const n = Math.tanh(gi[2 * H + k] + r * gh[2 * H + k]);
        h[k] = (1 - z) * n + z * h[k];
        if (record) { record(l, 0, k, h[k]); record(l, 1, k, r); record(l, 2, k, z); record(l, 3, k, n); }
      }
    } else {
      for (let k = 0; k < H; k++) {
        h[k] = Math.tanh(gi[k] + gh[k]);
        if (record) record(l, 0, k, h[k]);
      }
    }
    x = h;
  }
  affine(network.weights.decoder_weight, network.weights.decoder_bias, network.V, H, x, network.logits);
  return network.logits;
}

function softmax(logits, temperature, banned) {
  let top = -Infinity;
  for (let v = 0; v < logits.length; v++) if (v !== banned && logits[v] > top) top = logits[v];
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let v = 0; v < logits.length; v++) { p[v] = v === banned && banned !== undefined ? 0 : Math.exp((logits[v] - top) / temperature); sum += p[v]; }
  for (let v = 0; v < p.length; v++) p[v] /= sum;
  return p;
}

function run(ids, k, id) {
  const T = ids.length, names = STATE_NAMES[network.cell], H = network.H, L = network.layers;
  const states = names.map(() => new Float32Array(T * L * H));  // (T, layers, hidden) per state, as a Recording
  const topIds = new Int32Array(T * k), topProbs = new Float32Array(T * k), actual = new Float32Array(T);
  let t = 0;
  const record = (l, s, unit, value) => { states[s][(t * L + l) * H + unit] = value; };
  reset();
  const started = performance.now();
  for (t = 0; t < T; t++) {
    const p = softmax(step(ids[t], record), 1);  // the unknown id is a possible output here, as in Python's recording
    const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a]).slice(0, k);
    order.forEach((v, j) => { topIds[t * k + j] = v; topProbs[t * k + j] = p[v]; });
    actual[t] = t + 1 < T ? p[ids[t + 1]] : 0;
    if (t % 256 === 255) postMessage({ id, progress: (t + 1) / T });
  }
  const seconds = (performance.now() - started) / 1000;
  return { result: { names, states, topIds, topProbs, actual, seconds }, transfer: [...states.map((s) => s.buffer), topIds.buffer, topProbs.buffer, actual.buffer] };
}

function mulberry32(seed) {  // a small seeded generator: the same seed samples the same text
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

function sample(ids, count, temperature, seed) {
  const random = mulberry32(seed), out = new Int32Array(count);
  reset();
  let logits = null;
  for (const id of ids) logits = step(id, null);
  let last = ids.length ? ids[ids.length - 1] : 0;
  if (!logits) logits = step(last, null);
  for (let n = 0; n < count; n++) {
    const p = softmax(logits, temperature, network.unknown_id);  // never the unknown id, as charnn generate
    let u = random(), next = 0;
    for (; next < p.length - 1; next++) { u -= p[next]; if (u < 0) break; }
    out[n] = last = next;
    logits = step(last, null);
  }
  return { result: { ids: out }, transfer: [out.buffer] };
}

onmessage = (event) => {
  const msg = event.data;
  try {
    if (msg.op === "load") { load(msg.model); postMessage({ id: msg.id, result: true }); return; }
    const { result, transfer } = msg.op === "run" ? run(msg.ids, msg.k, msg.id) : sample(msg.ids, msg.count, msg.temperature, msg.seed);
    postMessage({ id: msg.id, result }, transfer);
  } catch (err) {
    postMessage({ id: msg.id, error: String(err && err.message || err) });
  }
};
