// The text, one span a character, and the tooltip over it.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
// ------------------------------------------------------------ text
function charLabel(ch) {
  if (ch === "\n") return "↵"; if (ch === "\t") return "⇥"; if (ch === " ") return "␣";
  const code = ch.codePointAt(0);
  if (code < 32) return String.fromCharCode(0x2400 + code);
  if (code === 127) return "␡";
  return ch;
}
function buildText(chars) {
  if (chars.length !== shownChars) throw new Error(`the text has ${chars.length} characters, the data ${shownChars}`);
  const box = byId("text"), fragment = document.createDocumentFragment();
  box.textContent = ""; current.spans = [];
  current.lineOf = new Int32Array(shownChars); current.colOf = new Int32Array(shownChars); current.lineStart = new Int32Array(shownChars);
  let line = 1, col = 0, lineStart = 0;
  for (let i = 0; i < shownChars; i++) {
    const ch = chars[i], span = document.createElement("span");
    span.ci = i;
    current.lineOf[i] = line; current.colOf[i] = col; current.lineStart[i] = lineStart;
    if (ch === "\n") { span.textContent = "↵\n"; span.className = "nl"; line++; col = 0; lineStart = i + 1; }
    else {
      const code = ch.codePointAt(0);
      span.textContent = (code < 32 && ch !== "\t") || code === 127 ? charLabel(ch) : ch;
      col++;
    }
    current.spans.push(span);
    fragment.append(span);
  }
  box.append(fragment);
  current.chars = chars;
}

// ------------------------------------------------------------ tooltip
const tip = byId("tip");
function fmt(v, digits = 3) { return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits); }
function showTip(i, x, y) {
  current.pos = i;
  const ch = current.chars[i];
  const parts = [];
  parts.push(`<div><span class="char">'${escapeHtml(charLabel(ch))}'</span> position ${i.toLocaleString()} · line ${current.lineOf[i]}, col ${current.colOf[i]}` +
             `${current.heldoutStart === null ? " · your text" : i >= current.heldoutStart ? " · held-out" : " · selection"}</div>`);
  const entry = track(current.layer, current.unit, current.state);
  if (entry) {
    const coarse = entry.levels < 127 ? ` <span class="small">(±${(0.5 / entry.levels * (current.state === "c" ? entry.scale : SIGMOID.has(current.state) ? 0.5 : 1)).toFixed(2)})</span>` : "";
    parts.push(`<div>unit ${current.layer}:${current.unit} <b>${current.state} = ${fmt(realValue(entry, i, current.state))}</b>${coarse}</div>`);
  } else parts.push(`<div class="missing">unit ${current.layer}:${current.unit} ${current.state}: not in this file</div>`);
  const others = pageData.states.filter((s) => has(current.layer, current.unit, s))
    .map((s) => `${s} ${fmt(realValue(track(current.layer, current.unit, s), i, s), 2)}`);
  if (others.length > 1) parts.push(`<div class="small">${others.join(" · ")}</div>`);
  const labels = [];
  for (const f of current.features.values()) {
    const value = f.labels[i];
    if (!holds(f, i)) continue;
    if (f.kind === "binary") { if (value) labels.push(`<b>${escapeHtml(f.name)}</b>`); }
    else labels.push(`${escapeHtml(f.name)}=${value}`);
  }
  parts.push(`<div>labels: ${labels.length ? labels.join(", ") : "none"}</div>`);
  const k = pageData.predictions.k, next = i + 1 < current.chars.length ? current.chars[i + 1] : null;
  const rows = [];
  for (let j = 0; j < k; j++) {
    const id = current.predIds[i * k + j], p = current.predProbs[i * k + j] / 255, guess = pageData.vocab[id];
    const cls = guess === next ? ' class="actual"' : "";
    rows.push(`<tr${cls}><td>'${escapeHtml(charLabel(guess))}'</td><td>${(100 * p).toFixed(1)}%</td>` +
              `<td><span class="bar" style="width:${Math.round(80 * p)}px"></span></td></tr>`);
  }
  const actual = next === null ? "" :
    `<div class="small">actual next '${escapeHtml(charLabel(next))}': ${(100 * current.actual[i] / 255).toFixed(1)}%</div>`;
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
