// The unit picker, the state switch, the legend, and the view kept in the URL fragment.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
// ------------------------------------------------------------ picker, state switch, legend
function unitButtons() {
  const box = byId("features");
  for (const [name, feature] of Object.entries(probeReport.features)) {
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
        onclick: () => { current.feature = name; byId("overlay").value = name; select(unit.layer, unit.unit, unit.state); } },
        el("span", { text: `${unit.layer}:${unit.unit} ${unit.state}` }),
        el("span", { text: unit.sign > 0 ? "+" : "−" }),
        el("span", { class: pass ? "pass" : "", text: held === null ? "–" : held.toFixed(3) }),
        el("span", { class: "detail", text: unit.score.toFixed(3) }),
        el("span", { class: "detail", text: pct }));
      list.append(button);
    }
    box.append(el("div", { class: "feature" }, head, meta, list));
  }
  for (const [name, reason] of Object.entries(probeReport.skipped_features || {}))
    box.append(el("div", { class: "feature skipped" }, el("h3", { text: name }), el("div", { class: "meta", text: `not scored: ${reason}` })));
}
function stateButtons() {
  const box = byId("state-switch");
  for (const state of pageData.states)
    box.append(el("button", { type: "button", "data-state": state, text: state, title: STATE_HELP[state] || state,
                              onclick: () => select(current.layer, current.unit, state) }));
}
function numberPicker() {
  const layerSelect = byId("pick-layer"), stateSelect = byId("pick-state"), unitInput = byId("pick-unit");
  for (let l = 1; l <= pageData.layers; l++) layerSelect.append(el("option", { value: l, text: l }));
  for (const state of pageData.states) stateSelect.append(el("option", { value: state, text: state }));
  unitInput.max = pageData.hidden - 1;
  const refresh = () => {
    const layer = +layerSelect.value, unit = +unitInput.value;
    for (const option of stateSelect.options) {
      option.disabled = !has(layer, unit, option.value);
      option.textContent = option.value + (option.disabled ? " (not in file)" : "");
    }
  };
  layerSelect.addEventListener("change", refresh); unitInput.addEventListener("input", refresh);
  byId("number-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const layer = +layerSelect.value, unit = Math.round(+unitInput.value);
    if (!(unit >= 0 && unit < pageData.hidden)) { unitInput.setCustomValidity(`units are 0..${pageData.hidden - 1}`); unitInput.reportValidity(); return; }
    unitInput.setCustomValidity("");
    select(layer, unit, stateSelect.value);
  });
  current.refreshNumberPicker = refresh;
  const cov = pageData.coverage;
  byId("coverage").textContent = `In this file: ${cov.description} (budget ${cov.budget_mb} MB: --html-max-mb). States not in it are greyed out.`;
}
function cScalePicker() {
  const picker = byId("c-scale");
  for (const [value, text] of Object.entries(C_SCALES)) picker.append(el("option", { value, text }));
  picker.value = current.cScale;
  picker.addEventListener("change", () => { current.cScale = picker.value; recolour(); legend(); schedulePlot(); saveHash(); });
}
function overlayPicker() {
  const select_ = byId("overlay");
  select_.append(el("option", { value: "", text: "nothing" }));
  for (const f of pageData.features) select_.append(el("option", { value: f.name, text: f.kind === "ordinal" ? `${f.name} > 0` : f.name }));
  select_.addEventListener("change", () => { current.feature = select_.value || null; applyOverlay(); schedulePlot(); saveHash(); });
}
function legend() {
  const entry = track(current.layer, current.unit, current.state);
  byId("c-scale-box").hidden = current.state !== "c";
  if (!entry) { byId("legend-low").textContent = byId("legend-high").textContent = byId("legend-note").textContent = ""; return; }
  const view = trackView(entry, current.state);
  let note = `white = ${view.mid}`;
  if (current.state === "c") note += view.mode === "centred" ? " (the median; ends: 98% of characters lie between)" : "";
  else if (current.state === "h" && pageData.cell === "lstm") note += "; h = o · tanh(c)";
  if (entry.levels < 127) note += `; stored at ${2 * entry.levels + 1} levels`;
  byId("legend-low").textContent = view.low; byId("legend-high").textContent = view.high; byId("legend-note").textContent = note;
}
function select(layer, unit, state) {
  if (!pageData.states.includes(state)) state = "h";
  current.layer = layer; current.unit = unit; current.state = state;
  byId("unit-name").textContent = `layer ${layer} · unit ${unit} · ${STATE_HELP[state] || state}`;
  for (const button of document.querySelectorAll("#state-switch button")) {
    button.disabled = !has(layer, unit, button.dataset.state);
    button.title = button.disabled ? "not in this file: raise --html-max-mb" : STATE_HELP[button.dataset.state];
    button.classList.toggle("active", button.dataset.state === state);
  }
  for (const button of document.querySelectorAll(".unit"))
    button.classList.toggle("active", button.dataset.unit.startsWith(`${layer}:${unit}:`) && button.dataset.feature === current.feature);
  byId("pick-layer").value = layer; byId("pick-unit").value = unit; byId("pick-state").value = state;
  if (current.refreshNumberPicker) current.refreshNumberPicker();
  if (!has(layer, unit, state)) byId("unit-name").textContent += " — not in this file (raise --html-max-mb)";
  recolour(); legend(); redrawScatters(); schedulePlot(); saveHash();
  if (current.pos !== null && tip.classList.contains("show")) showTip(current.pos, parseFloat(tip.style.left) - 14, parseFloat(tip.style.top) - 16);
}

// ------------------------------------------------------------ the URL fragment: #u=LAYER:UNIT:STATE&f=FEATURE&c=SCALE&at=POS
function saveHash() {
  const parts = [`u=${key(current.layer, current.unit, current.state)}`];
  if (current.feature) parts.push(`f=${encodeURIComponent(current.feature)}`);
  if (current.cScale !== "centred") parts.push(`c=${current.cScale}`);
  if (current.view && current.view !== "plots") parts.push(`v=${current.view}`);
  if (byId("layer-order").value) parts.push(`o=${encodeURIComponent(byId("layer-order").value)}`);
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
