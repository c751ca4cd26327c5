"""Pictures of attention maps for ``attention_visualizer.py``: PNG heat maps and the HTML page.

Weights are coloured with matplotlib's viridis by sqrt(weight) (small weights stay
visible); masked cells (the future, or outside a sliding window) are a neutral grey that is
not on the colour map. ``png_bytes`` writes an array pixel for pixel (matplotlib's
``imsave``); the HTML page is one self-contained file: every map as an embedded PNG, the
weights as JSON for the hover tooltip, no network.

What it leaves out: text inside the PNGs (the page has the labels).
"""
from __future__ import annotations

import base64
import html
import io
import json

import numpy as np

import _view

MASKED = (176, 176, 176)   # neutral grey: not on the colour map, so never mistaken for a weight
PAPER = (255, 255, 255)    # gaps between tiles of the grid picture


def _viridis() -> np.ndarray | None:
    """matplotlib's viridis as 256 RGB rows (dark purple = weight 0 ... yellow = 1); None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    return np.rint(matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


COLORMAP = _viridis()


def color_index(weights) -> np.ndarray:
    """Colour-map index 0..255 of each weight; sqrt so that small weights stay visible."""
    return np.clip(np.rint(np.sqrt(np.clip(weights, 0, 1)) * 255), 0, 255).astype(int)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (height, width, 3) uint8 array as PNG bytes, pixel for pixel (matplotlib's imsave)."""
    buf = io.BytesIO()
    _view.pyplot().imsave(buf, rgb, format="png")
    return buf.getvalue()


def heatmap_rgb(weights: np.ndarray, mask: np.ndarray, cell: int) -> np.ndarray:
    """(T, T) weights -> (T*cell, T*cell, 3) pixels; masked cells grey."""
    if COLORMAP is None:
        _view.pyplot()                                    # the clear "needs matplotlib" error
    rgb = COLORMAP[color_index(weights)]
    rgb[~mask] = MASKED
    return rgb.repeat(cell, axis=0).repeat(cell, axis=1)


def grid_rgb(maps: list[np.ndarray], masks: list[np.ndarray], cell: int, gap: int = 4) -> np.ndarray:
    """All layers (rows, layer 0 on top) x heads (columns) in one picture."""
    L, H, T = len(maps), maps[0].shape[0], maps[0].shape[-1]
    tile = T * cell
    out = np.empty((L * (tile + gap) + gap, H * (tile + gap) + gap, 3), np.uint8)
    out[:] = PAPER
    for l in range(L):
        for h in range(H):
            y, x = gap + l * (tile + gap), gap + h * (tile + gap)
            out[y:y + tile, x:x + tile] = heatmap_rgb(maps[l][h], masks[l], cell)
    return out


def data_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Attention maps</title><style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}img{image-rendering:pixelated;display:block}
.grid td{padding:3px;text-align:center;font-size:11px}.grid img{cursor:pointer;border:1px solid #ccc}
.focus{display:grid;grid-template-columns:auto auto;gap:2px;align-items:end;width:max-content}
.lab{font:%(fs)dpx/%(cell)dpx monospace;white-space:pre;text-align:right}
.cols{display:flex}.cols span{writing-mode:vertical-rl;width:%(cell)dpx;font:%(fs)dpx monospace;white-space:pre}
#tip{position:fixed;background:#222;color:#fff;padding:3px 6px;font:12px monospace;display:none;pointer-events:none}
table.sum{border-collapse:collapse}
table.sum td,table.sum th{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}
.sw{display:inline-block;width:14px;height:14px;vertical-align:middle}.note{background:#fff6d6;padding:8px}
</style></head><body><h1>Attention maps</h1>%(body)s<div id="tip"></div><script>
const D=%(data)s, tip=document.getElementById("tip");
function hover(e){const im=e.target,T=D.labels.length,r=im.getBoundingClientRect();
 const q=Math.floor((e.clientY-r.top)/r.height*T),k=Math.floor((e.clientX-r.left)/r.width*T);
 if(q<0||k<0||q>=T||k>=T)return;const w=D.w[im.dataset.l][im.dataset.h][q*T+k];
 tip.textContent=`L${im.dataset.l} H${im.dataset.h}  query ${q} ${D.labels[q]} -> key ${k} ${D.labels[k]}: `
  +(w<0?"masked":w.toFixed(4));
 tip.style.left=(e.clientX+12)+"px";tip.style.top=(e.clientY+12)+"px";tip.style.display="block";}
document.querySelectorAll("img.map").forEach(im=>{im.onmousemove=hover;im.onmouseleave=()=>tip.style.display="none";
 if(im.id!=="big")im.onclick=()=>{const b=document.getElementById("big");b.src=im.src;b.dataset.l=im.dataset.l;
 b.dataset.h=im.dataset.h;document.getElementById("cap").textContent=im.title;};});
</script></body></html>"""


def render_html(maps, masks, labels, rows, layer, head, header: list[str], table: list[list[str]],
                first_name: str = "first") -> str:
    """The page: the selected map large, every layer x head small, the summary ``table`` (header row first)."""
    L, H, T = len(maps), maps[0].shape[0], len(labels)
    big, thumb = (16 if T <= 48 else 8), max(2, min(8, 160 // T))
    title = {(r["layer"], r["head"]): f"layer {r['layer']} head {r['head']}: entropy {r['entropy']:.2f} nats, "
             f"self {_view.pct(r['self'])}, prev {_view.pct(r['prev'])}, {first_name} {_view.pct(r['first'])}" for r in rows}
    esc = html.escape
    parts = ["".join(f"<p>{esc(h)}</p>" if not h.startswith("note:") else f'<p class="note">{esc(h)}</p>'
                     for h in header)]
    legend = " ".join(f'<span class="sw" style="background:rgb{tuple(int(c) for c in COLORMAP[color_index(w)])}">'
                      f"</span> {w:g}" for w in (0, 0.05, 0.2, 0.5, 1))
    parts.append(f'<p>Rows are queries, columns keys; colour by sqrt(weight): {legend} '
                 f'<span class="sw" style="background:rgb{MASKED}"></span> masked (future or outside the window). '
                 "Hover a map for the weights; click a small map to show it here.</p>")
    cols = "".join(f"<span>{esc(x[:14])}</span>" for x in labels)
    row_labels = "\n".join(f"{esc(x[:14])} {t}" for t, x in enumerate(labels))
    parts.append(f'<h2 id="cap">{esc(title[layer, head])}</h2><div class="focus"><div></div><div class="cols">'
                 f'{cols}</div><div class="lab">{row_labels}</div><img class="map" id="big" '
                 f'data-l="{layer}" data-h="{head}" width="{T * big}" height="{T * big}" '
                 f'src="{data_uri(heatmap_rgb(maps[layer][head], masks[layer], 1))}"></div>')
    parts.append('<h2>All layers × heads</h2><table class="grid"><tr><td></td>'
                 + "".join(f"<td>head {h}</td>" for h in range(H)) + "</tr>")
    for l in range(L):
        parts.append(f"<tr><td>layer {l}</td>" + "".join(
            f'<td><img class="map thumb" data-l="{l}" data-h="{h}" title="{esc(title[l, h])}" width="{T * thumb}" '
            f'height="{T * thumb}" src="{data_uri(heatmap_rgb(maps[l][h], masks[l], 1))}"></td>'
            for h in range(H)) + "</tr>")
    parts.append("</table><h2>Entropy (nats) and where the weight goes</h2><table class='sum'>"
                 + "".join("<tr>" + "".join(f"<{t}>{c}</{t}>" for c in row) + "</tr>"
                           for t, row in zip(["th"] + ["td"] * len(rows), table)) + "</table>")
    weights = [[np.where(masks[l], np.round(maps[l][h].astype(float), 4), -1).ravel().tolist() for h in range(H)]
               for l in range(L)]
    data = json.dumps({"labels": labels, "w": weights}).replace("</", "<\\/")
    return PAGE % dict(body="\n".join(parts), data=data, cell=big, fs=max(7, big - 4))
