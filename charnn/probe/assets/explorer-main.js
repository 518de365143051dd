// Start: load the data, build the page, show the first unit.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
async function main() {
  await load();
  const wanted = readHash();
  summary();
  byId("keys").textContent = pageData.states.join(" ");
  buildText(Array.from(pageData.text));
  unitButtons(); stateButtons(); numberPicker(); overlayPicker(); drawScatters(); viewControls(); searchControls(); liveControls();
  if (C_SCALES[wanted.c]) current.cScale = wanted.c;
  cScalePicker();
  const text = byId("text");
  text.addEventListener("mouseover", (event) => { const i = event.target.ci; if (i !== undefined) showTip(i, event.clientX, event.clientY); });
  text.addEventListener("mousemove", (event) => { if (tip.classList.contains("show")) placeTip(event.clientX, event.clientY); });
  text.addEventListener("mouseleave", hideTip);
  text.addEventListener("scroll", hideTip);
  const all = byId("plot-all"), near = byId("plot-near");
  all.addEventListener("click", (event) => jumpTo(plotPosition(all, event, 0, shownChars)));
  near.addEventListener("click", (event) => { const [a, b] = nearRange(); jumpTo(plotPosition(near, event, a, b)); });
  addEventListener("resize", schedulePlot);
  addEventListener("keydown", (event) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (pageData.states.includes(event.key) && has(current.layer, current.unit, event.key)) select(current.layer, current.unit, event.key);
  });
  // the first unit shown: the URL's, else the best-scoring flagged unit of the first feature that has one
  let first = null;
  for (const [name, feature] of Object.entries(probeReport.features)) if (feature.units.length) { first = { ...feature.units[0], feature: name }; break; }
  let layer = first ? first.layer : 1, unit = first ? first.unit : 0, state = first ? first.state : "h";
  current.feature = first ? first.feature : null;
  if (wanted.u) {
    const [l, u, s] = wanted.u.split(":");
    if (+l >= 1 && +l <= pageData.layers && +u >= 0 && +u < pageData.hidden) { layer = +l; unit = +u; state = s || "h"; }
  }
  if (wanted.f !== undefined) current.feature = current.features.has(wanted.f) ? wanted.f : null;
  byId("overlay").value = current.feature || "";
  applyOverlay();
  select(layer, unit, state);
  if (wanted.at !== undefined && +wanted.at >= 0 && +wanted.at < shownChars) jumpTo(+wanted.at);
  if (wanted.o !== undefined && current.unitScores.has(wanted.o)) byId("layer-order").value = wanted.o;
  if (["internals", "layer", "event"].includes(wanted.v)) showView(wanted.v);
  drawViews();
  window.charnnExplorer = {  // for tests and the console
    loadMs: performance.now(), state: current, select, showView, runLive, sampleLive, live: Live, back: () => current.probed && setSource(current.probed),
    value: (layer, unit, state, i) => { const entry = track(layer, unit, state); return entry ? realValue(entry, i, state) : null; },
  };
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  document.body.prepend(el("div", { id: "fatal", text: `The explorer could not start: ${err.message}` }));
  console.error(err);
});
