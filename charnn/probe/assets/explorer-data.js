// The page's data: inflated from the JSON block, the tracks and labels decoded.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
// ------------------------------------------------------------ data
const pageData = JSON.parse(byId("charnn-data").textContent);
const probeReport = pageData.report;
let shownChars = pageData.chars;  // characters of the text shown: the probed text's, or the user's under the live model
const SIGMOID = new Set(pageData.gates);  // the states in [0, 1]

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

const current = {  // what the page shows now: the unit, the feature, the text and its tracks
  layer: 1, unit: 0, state: "h", feature: null, pos: null, cScale: "centred",
  tracks: new Map(), features: new Map(), heldoutStart: probeReport.split.heldout.start, source: "probed", probed: null,
  predIds: null, predProbs: null, actual: null, spans: [], lineOf: null, colOf: null,
};

async function load() {
  const [ids, probs, actual, ...blobs] = await Promise.all([
    unpack(pageData.predictions.ids), unpack(pageData.predictions.probs), unpack(pageData.predictions.actual),
    ...pageData.features.map((f) => unpack(f.data)), ...pageData.features.map((f) => f.defined ? unpack(f.defined) : null),
    ...pageData.tracks.map((g) => unpack(g.data)),
  ]);
  const count = pageData.features.length;
  const features = blobs.slice(0, count), defined = blobs.slice(count, 2 * count), groups = blobs.slice(2 * count);
  pageData.tracks.forEach((group, g) => {
    const bytes = groups[g], values = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (values.length !== group.units.length * shownChars) throw new Error(`track block ${g} holds ${values.length} bytes, not ${group.units.length * shownChars}`);
    group.units.forEach(([layer, unit], k) => {
      const track = values.subarray(k * shownChars, (k + 1) * shownChars);
      if (group.delta) {  // stored as differences: add them up again (int8 arithmetic wraps like the encoder's mod 256)
        let running = 0;
        for (let i = 0; i < shownChars; i++) { running = (running + track[i]) << 24 >> 24; track[i] = running; }
      }
      current.tracks.set(key(layer, unit, group.state), { values: track, levels: group.levels, scale: group.scales ? group.scales[k] : 1, view: null });
    });
  });
  current.predIds = typed(ids, pageData.predictions.id_dtype);
  current.predProbs = probs;
  current.actual = actual;
  current.unitScores = new Map();
  for (const [name, blob] of Object.entries(pageData.unit_scores || {})) current.unitScores.set(name, await unpack(blob));
  pageData.features.forEach((f, k) => {
    const labels = f.dtype === "bits" ? bitsOf(features[k]) : typed(features[k], f.dtype);
    current.features.set(f.name, { ...f, labels, defined: defined[k] ? bitsOf(defined[k]) : null });
  });
}

function bitsOf(bytes) {  // one byte a character from bits packed little-endian
  const out = new Uint8Array(shownChars);
  for (let i = 0; i < shownChars; i++) out[i] = (bytes[i >> 3] >> (i & 7)) & 1;
  return out;
}
const holds = (f, i) => !f.defined || f.defined[i] === 1;  // the feature's label is defined at i
