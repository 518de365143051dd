// The page's constants and two DOM helpers.
// One part of the page's script: charnn.probe.html joins the parts, in order, inside one function scope.
const RED = [160, 18, 28], BLUE = [18, 52, 150], GOLD = "rgb(232,160,0)";
const GATE_COLOURS = { i: "#1b9e77", f: "#d95f02", o: "#7570b3", r: "#1b9e77", z: "#d95f02" };
const STATE_HELP = { h: "hidden state h", c: "cell state c", i: "input gate i", f: "forget gate f", g: "candidate g",
  o: "output gate o", r: "reset gate r", z: "update gate z", n: "candidate n" };
const byId = (id) => document.getElementById(id);
const el = (tag, props, ...children) => {
  const node = document.createElement(tag);
  if (props) for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};
