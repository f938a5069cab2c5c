"""The gallery's page (``reports/gallery/<category>/index.html``): one static file that opens from the file system,
its data in a JSON block and a few lines of script: cards sorted by the selected method's image score, filters
(all, good, defective, the method's misses: a missed defect or a false alarm at its image F1-max threshold) and a
method switch over the same images."""

from __future__ import annotations

import html
import json
from typing import Any, Mapping, Sequence

from .params import DataParams

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 0; background: #fafafa; color: #222; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 8px 16px; z-index: 1; }
h1 { font-size: 18px; margin: 4px 0; }
p.what { margin: 2px 0 6px; color: #555; }
.controls button { margin: 2px 4px 2px 0; padding: 3px 10px; border: 1px solid #bbb; background: #f4f4f4; cursor: pointer; }
.controls button.on { background: #333; color: #fff; border-color: #333; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
#count { font-weight: 600; margin-left: 8px; }
main { display: flex; flex-wrap: wrap; gap: 10px; padding: 12px 16px; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: 6px; width: 332px; }
figure.hidden { display: none; }
figure.FN, figure.FP { border-color: #d33; }
figure img { width: 160px; height: 160px; background: #eee; }
figcaption { font-size: 12px; margin-top: 4px; word-break: break-all; }
figcaption b { font-family: ui-monospace, monospace; }
"""

SCRIPT = """
const data = JSON.parse(document.getElementById("gallery-data").textContent);
const grid = document.getElementById("grid");
const cards = data.images.map((im, i) => {
  const fig = document.createElement("figure");
  fig.dataset.index = i;
  fig.dataset.label = im.label ? "defective" : "good";
  const base = document.createElement("img");
  base.loading = "lazy"; base.alt = im.name; base.src = "images/" + String(i).padStart(4, "0") + "_image.jpg";
  const over = document.createElement("img");
  over.loading = "lazy"; over.className = "overlay";
  const cap = document.createElement("figcaption");
  fig.append(base, over, cap);
  grid.append(fig);
  return fig;
});
let method = data.methods[0].name, filter = "all";
function verdictText(v) {
  return {TP: "defect found", TN: "good, passed", FP: "false alarm", FN: "defect missed"}[v] || "no threshold";
}
function render() {
  const m = data.methods.find(x => x.name === method);
  const order = data.images.map((im, i) => i).sort((a, b) => data.images[b].scores[method] - data.images[a].scores[method]);
  let shown = 0;
  for (const i of order) {
    const im = data.images[i], fig = cards[i], v = im.verdicts[method];
    fig.querySelector("img.overlay").src = "images/" + String(i).padStart(4, "0") + "_" + method + ".jpg";
    fig.querySelector("img.overlay").alt = im.name + " " + m.label;
    fig.className = v || "";
    fig.querySelector("figcaption").innerHTML =
      "<b>" + im.scores[method].toPrecision(4) + "</b> " + m.label + " · " + verdictText(v) + "<br>" + im.name;
    const keep = filter === "all" || fig.dataset.label === filter || (filter === "misses" && (v === "FN" || v === "FP"));
    fig.classList.toggle("hidden", !keep);
    if (keep) shown += 1;
    grid.append(fig);
  }
  document.getElementById("count").textContent = shown + " of " + data.images.length + " images";
  for (const b of document.querySelectorAll("button[data-method]")) b.classList.toggle("on", b.dataset.method === method);
  for (const b of document.querySelectorAll("button[data-filter]")) b.classList.toggle("on", b.dataset.filter === filter);
  document.getElementById("about").textContent = m.about;
}
for (const b of document.querySelectorAll("button[data-method]")) b.onclick = () => { method = b.dataset.method; render(); };
for (const b of document.querySelectorAll("button[data-filter]")) b.onclick = () => { filter = b.dataset.filter; render(); };
render();
"""


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _about(m: Mapping[str, Any]) -> str:
    """One line on a method: its metrics on this category and what its thresholds and colours are."""
    at = lambda t: "n/a" if t is None else f"{t:.4g}"  # noqa: E731
    return (
        f"{m['label']}: image AUROC {_pct(m['image_auroc'])}, image F1-max {_pct(m['image_f1max'])} at score "
        f"{at(m['image_threshold'])}; pixel AUROC {_pct(m['pixel_auroc'])}, pixel F1-max {_pct(m['pixel_f1max'])} "
        f"at {at(m['pixel_threshold'])} (the contoured regions), PRO {_pct(m['pro'])}; map colours from "
        f"{m['scale'][0]:.3g} (blue) to {m['scale'][1]:.3g} (red)."
    )


def page(
    d: DataParams,
    category: str,
    seed: int,
    methods: Sequence[Mapping[str, Any]],
    images: Sequence[Mapping[str, Any]],
    colours: Mapping[str, tuple[int, int, int]],
) -> str:
    """The whole page of one category."""
    what = "synthetic data" if d.source == "synthetic" else d.spec.title
    about = {m["name"]: _about(m) for m in methods}
    payload = {
        "methods": [{**m, "about": about[m["name"]]} for m in methods],
        "images": list(images),
    }
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    legend = {
        "truth": "defect region found",
        "missed": "defect region missed",
        "hit": "predicted region on a defect",
        "false": "false positive region",
    }
    swatches = "".join(
        f'<span><i style="background: rgb{tuple(colours[k])}"></i>{html.escape(text)}</span>'
        for k, text in legend.items()
    )
    method_buttons = "".join(
        f'<button data-method="{html.escape(m["name"])}">{html.escape(m["label"])}</button>' for m in methods
    )
    filters = "".join(
        f'<button data-filter="{f}">{label}</button>'
        for f, label in (("all", "all"), ("good", "good"), ("defective", "defective"), ("misses", "misses"))
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(category)} — FRAD gallery</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{html.escape(category)} ({html.escape(what)}): {len(images)} test images, seed {seed}</h1>
<p class="what">Each card: the test image as the backbone saw it; the selected method's anomaly map over it with the
regions predicted at its pixel F1-max threshold and the ground truth; its image score, and its verdict at its image
F1-max threshold. Sorted by that score, highest first.</p>
<p class="what" id="about"></p>
<div class="controls">Method: {method_buttons} &nbsp; Show: {filters}<span id="count"></span></div>
<div class="legend">{swatches}</div>
</header>
<main id="grid"></main>
<script type="application/json" id="gallery-data">{data}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
