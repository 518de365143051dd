// The views beside the plots (unit internals, layer overview, value at an event) and the search.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
// ------------------------------------------------------------ views beside the plots: internals, layer overview, value at an event
function showView(name) {
  current.view = name;
  for (const button of document.querySelectorAll("#view-tabs button")) button.classList.toggle("active", button.dataset.view === name);
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  schedulePlot(); saveHash();
}
function windowAround(span) {  // [start, stop) of span characters around the pointer
  const width = Math.min(shownChars, span), centre = current.pos === null ? 0 : current.pos;
  const start = Math.max(0, Math.min(shownChars - width, centre - (width / 2 | 0)));
  return [start, start + width];
}
function drawViews() {
  if (current.view === "internals") drawInternals();
  else if (current.view === "layer") drawLayer();
  else if (current.view === "event") drawEvent();
  else drawPlots();
}
function rowChar(ch) { return ch === "\n" ? "↵" : ch === "\t" ? "⇥" : charLabel(ch); }

function drawInternals() {  // every state of the selected unit as stacked rows of coloured text over the same characters
  const box = byId("internals");
  box.textContent = "";
  const columns = Math.max(20, Math.floor((box.clientWidth - 200) / 7.9));
  const [start, stop] = windowAround(columns);
  for (const state of pageData.states) {
    const entry = track(current.layer, current.unit, state);
    const name = el("button", { type: "button", class: "row-label" + (state === current.state ? " active" : ""), text: state, "data-state": state,
                                title: `${STATE_HELP[state] || state}: click to make it the main view`, onclick: () => select(current.layer, current.unit, state) });
    const line = el("span", { class: "row-text", "data-state": state });
    let legendText = "not in this file";
    if (entry) {
      const view = trackView(entry, state);
      for (let i = start; i < stop; i++) {
        const c = view.colour[entry.values[i] + entry.levels], span = el("span", { text: rowChar(current.chars[i]) });
        span.style.backgroundColor = BG[c]; span.style.color = FG[c];
        span.title = `${state} = ${fmt(realValue(entry, i, state))} at ${i}`;
        if (i === current.pos) span.className = "at";
        line.append(span);
      }
      legendText = `${view.low} … ${view.mid} … ${view.high}`;
    } else line.append(el("span", { class: "missing", text: "not in this file: raise --html-max-mb, or run the live model on the text" }));
    box.append(el("div", { class: "row" }, name, line, el("span", { class: "small", text: legendText })));
  }
}

function layerOrder() {  // the units of the selected layer, by the chosen feature's held-out score or by number
  const H = pageData.hidden, order = Array.from({ length: H }, (_, u) => u), by = byId("layer-order").value, scores = current.unitScores.get(by);
  if (scores) {
    const base = (pageData.states.indexOf(current.state) * pageData.layers + (current.layer - 1)) * H, score = (u) => scores[base + u] === 255 ? -1 : scores[base + u];
    order.sort((a, b) => score(b) - score(a) || a - b);
  }
  return order;
}
function drawLayer() {  // every unit of the layer × the characters around the pointer, as one heat map
  const canvas = byId("layer-map"), H = pageData.hidden;
  canvas.style.height = `${Math.max(120, Math.min(560, H * 3))}px`;
  const [ctx, width, height] = sizeCanvas(canvas);
  const [start, stop] = windowAround(Math.max(20, Math.floor(width / 6)));
  const order = layerOrder(), count = stop - start, image = new ImageData(count, H);
  let absent = 0;
  order.forEach((unit, row) => {
    const entry = track(current.layer, unit, current.state);
    if (!entry) absent++;
    const view = entry ? trackView(entry, current.state) : null;
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
  const rowHeight = height / H, columnWidth = width / count, mine = order.indexOf(current.unit);
  ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5; ctx.strokeRect(0.75, mine * rowHeight, width - 1.5, Math.max(2, rowHeight)); ctx.lineWidth = 1;
  if (current.pos !== null && current.pos >= start && current.pos < stop) { ctx.fillStyle = "rgba(0,0,0,0.45)"; ctx.fillRect((current.pos - start) * columnWidth, 0, Math.max(1.5, columnWidth / 3), height); }
  current.layerMap = { order, rowHeight, start, columnWidth, layer: current.layer, state: current.state, by: byId("layer-order").value };
  const by = byId("layer-order").value;
  byId("layer-note").textContent = `layer ${current.layer} · ${current.state} · ${H} units (${by ? `best ${by} score at the top` : "unit 0 at the top"}) × characters ` +
    `${start.toLocaleString()}–${(stop - 1).toLocaleString()}${absent ? ` · ${absent} units not in this file (hatched)` : ""} · click a row to select its unit`;
}
function layerRowAt(event) {
  const map = current.layerMap, rect = byId("layer-map").getBoundingClientRect();
  if (!map) return null;
  const row = Math.floor((event.clientY - rect.top) / map.rowHeight), i = map.start + Math.floor((event.clientX - rect.left) / map.columnWidth);
  return row >= 0 && row < map.order.length ? { unit: map.order[row], i: Math.max(0, Math.min(shownChars - 1, i)) } : null;
}

function eventChar() {
  const raw = byId("event-char").value;
  if (raw === "" || raw === "\\n") return "\n";
  if (raw === "\\t") return "\t";
  return Array.from(raw)[0];
}
function drawEvent() {  // the selected unit at every occurrence of a character, one row per group, as a strip plot
  const canvas = byId("event-plot"), target = eventChar(), byLine = byId("event-group").value === "line";
  const back = Math.max(1, Math.round(+byId("event-back").value) || 1), entry = track(current.layer, current.unit, current.state);
  byId("event-back-box").hidden = byLine;
  const groups = new Map();
  let events = 0;
  for (let i = 0; i < shownChars; i++) {
    if (current.chars[i] !== target) continue;
    const j = byLine ? current.lineStart[i] : i - back, group = j >= 0 ? current.chars[j] : "(start)";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(i);
    events++;
  }
  let rows = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  if (rows.length > 16) rows = [...rows.slice(0, 15), ["(other)", rows.slice(15).flatMap((r) => r[1])]];
  rows.sort((a, b) => (a[0] === "(other)") - (b[0] === "(other)") || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  canvas.style.height = `${Math.max(60, 24 + 20 * rows.length)}px`;
  const [ctx, width, height] = sizeCanvas(canvas);
  current.eventDots = [];
  const note = byId("event-note");
  if (!entry || !events) {
    note.textContent = !entry ? `${current.layer}:${current.unit} ${current.state} is not in this file` : `no '${rowChar(target)}' in the text`;
    return;
  }
  let low = Infinity, high = -Infinity;
  for (const [, positions] of rows) for (const i of positions) { const v = realValue(entry, i, current.state); if (v < low) low = v; if (v > high) high = v; }
  if (SIGMOID.has(current.state)) { low = Math.min(low, 0); high = Math.max(high, 1); } else if (current.state !== "c") { low = Math.min(low, -1); high = Math.max(high, 1); }
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
      const x = xOf(realValue(entry, i, current.state)), jitter = ((i * 2654435761) % 1000) / 1000 * 10 - 5, dotY = y + jitter;
      ctx.fillStyle = i === current.pos ? "#000" : "rgba(18,52,150,0.55)";
      ctx.fillRect(x - 1.5, dotY - 1.5, 3, 3);
      current.eventDots.push({ x, y: dotY, i });
    }
  });
  note.textContent = `${events.toLocaleString()} × '${rowChar(target)}', ${current.layer}:${current.unit} ${current.state} after reading it, grouped by ` +
    (byLine ? "the first character of its line" : `the character ${back} before`) + " · hover a dot to go there";
}
function eventDotAt(event) {
  const rect = byId("event-plot").getBoundingClientRect(), x = event.clientX - rect.left, y = event.clientY - rect.top;
  let best = null, bestDistance = 36;
  for (const dot of current.eventDots || []) { const d = (dot.x - x) ** 2 + (dot.y - y) ** 2; if (d < bestDistance) { best = dot; bestDistance = d; } }
  return best;
}
function viewControls() {
  for (const button of document.querySelectorAll("#view-tabs button")) button.addEventListener("click", () => showView(button.dataset.view));
  const order = byId("layer-order");
  order.append(el("option", { value: "", text: "unit number" }));
  for (const name of current.unitScores.keys()) order.append(el("option", { value: name, text: `${name} score` }));
  order.addEventListener("change", () => { schedulePlot(); saveHash(); });
  const map = byId("layer-map");
  map.addEventListener("click", (event) => { const at = layerRowAt(event); if (at) select(current.layer, at.unit, current.state); });
  map.addEventListener("mousemove", (event) => {
    const at = layerRowAt(event), entry = at && track(current.layer, at.unit, current.state);
    map.title = at ? `unit ${current.layer}:${at.unit} ${current.state}` + (entry ? ` = ${fmt(realValue(entry, at.i, current.state))} at ${at.i}` : " (not in this file)") : "";
  });
  for (const id of ["event-char", "event-group", "event-back"]) byId(id).addEventListener("input", schedulePlot);
  byId("event-plot").addEventListener("mousemove", (event) => { const dot = eventDotAt(event); if (dot && dot.i !== current.pos) jumpTo(dot.i); });
}

// ------------------------------------------------------------ search
function searchHits(query) {
  const q = Array.from(query), hits = [];
  if (!q.length) return hits;
  outer: for (let i = 0; i + q.length <= shownChars; i++) {
    for (let k = 0; k < q.length; k++) if (current.chars[i + k] !== q[k]) continue outer;
    hits.push(i);
  }
  return hits;
}
function clearSearch() {
  for (const span of document.querySelectorAll("#text span.hit")) span.classList.remove("hit");
  current.search = { query: null, hits: [], at: -1 };
  byId("search-count").textContent = "";
}
function stepSearch(direction) {
  const query = byId("search").value;
  if (query !== current.search.query) {
    clearSearch();
    current.search = { query, hits: searchHits(query), at: direction > 0 ? -1 : 0 };
    const length = Array.from(query).length;
    for (const start of current.search.hits.slice(0, 20000)) for (let k = start; k < start + length; k++) current.spans[k].classList.add("hit");
  }
  const { hits } = current.search;
  if (!query) return;
  if (!hits.length) { byId("search-count").textContent = "no match"; return; }
  current.search.at = (current.search.at + direction + hits.length) % hits.length;
  byId("search-count").textContent = `${current.search.at + 1} of ${hits.length.toLocaleString()}`;
  jumpTo(hits[current.search.at]);
}
function searchControls() {
  clearSearch();
  byId("search").addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); stepSearch(event.shiftKey ? -1 : 1); } });
  byId("search").addEventListener("input", () => { if (!byId("search").value) clearSearch(); });
  byId("search-next").addEventListener("click", () => stepSearch(1));
  byId("search-prev").addEventListener("click", () => stepSearch(-1));
}
