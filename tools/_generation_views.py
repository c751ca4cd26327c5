"""The generation explorer's views: coloured text, the step table and the token tree for the
terminal, the self-contained HTML page (``--html``) and the knob bar charts (``--plot``).
Views only: the numbers come from Phase 6's trace and Phase 1's sampler."""
from __future__ import annotations

import html
import json
import math

import torch

from phases.common.console import UserError, paint
from phases.phase6_inference.engine import Engine
from phases.phase6_inference.explore import Trace, piece

HIST_BINS = 64
SCALE = [(0.5, "1;32"), (1.5, "32"), (3.0, "33"), (5.0, "31"), (float("inf"), "1;31")]  # surprisal (nats) -> ANSI colour


def render_tree(leaves: list[dict], depth: int, color: bool) -> list[str]:
    """One line per node, indented by depth; a leaf's line ends with its continuation."""
    lines, previous = [], []
    for leaf in leaves:
        path = leaf["path"]
        first = next((d for d in range(depth) if previous[:d + 1] != path[:d + 1]), depth)
        for d in range(first, depth):
            token, p = path[d]
            label = f"{leaf['path_text'][d]!r} p={p:.3f}"
            if d == depth - 1:
                label += "  ->  " + paint(repr(leaf["text"][:60]), "2", color)
            lines.append("  " * d + "├─ " + label)
        previous = path
    return lines


# -- terminal output ---------------------------------------------------------------------------------

def surprisal_color(nats: float) -> str:
    return next(code for bound, code in SCALE if nats < bound)


def coloured(tr: Trace, color: bool, by: str = "surprisal") -> str:
    out = []
    for s in tr.steps:
        value = -math.log(max(s.p_model, 1e-30)) if by == "surprisal" else s.entropy
        out.append(paint(s.text, surprisal_color(value), color) if color else s.text)
    return "".join(out)


def legend(color: bool, by: str) -> str:
    parts = [paint(f"<{b:g}", c, color) if b != float("inf") else paint("more", c, color) for b, c in SCALE]
    return f"colour = {by} in nats: " + " ".join(parts)


def fmt_p(p: float) -> str:
    """A probability in 5 characters: 0.531, 0.004, 3e-05."""
    return f"{p:.3f}" if p >= 0.0005 or p == 0 else f"{p:.0e}"


def step_table(tr: Trace, limit: int) -> list[str]:
    lines = [f"{'step':>4}  {'token':<14} {'p':>6} {'p(knobs)':>8} {'H nats':>6}  top alternatives (p)"]
    for i, s in enumerate(tr.steps[:limit]):
        alts = "  ".join(f"{text!r} {fmt_p(p)}" for _, text, p, _ in s.alternatives)
        lines.append(f"{i:>4}  {s.text!r:<14.14} {fmt_p(s.p_model):>6} {fmt_p(s.p_sample):>8} {s.entropy:>6.2f}  {alts}")
    if len(tr.steps) > limit:
        lines.append(f"  ... {len(tr.steps) - limit} more steps (--steps N)")
    return lines


def summary(tr: Trace) -> dict:
    n = max(len(tr.steps), 1)
    return {"tokens": len(tr.steps), "distinct": len({s.token for s in tr.steps}),
            "mean_surprisal": sum(-math.log(max(s.p_model, 1e-30)) for s in tr.steps) / n,
            "mean_entropy": sum(s.entropy for s in tr.steps) / n}



PLOT_KNOBS = [("the model (T = 1)", {}), ("T = 0.5", {"temperature": 0.5}), ("T = 1.5", {"temperature": 1.5}),
              ("top-k = 5", {"top_k": 5}), ("top-p = 0.9", {"top_p": 0.9})]


def plot_knobs(logits: torch.Tensor, tok, prompt_text: str, path: str, bars: int = 12) -> None:
    """One bar chart per knob setting: the probabilities of the model's top tokens after the knob."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install matplotlib (the 'tools' extra)") from None
    from phases.phase1_transformer.sampling import probabilities
    order = logits.argsort(descending=True)[:bars]
    labels = [piece(tok, int(t)) for t in order]
    fig, axes = plt.subplots(1, len(PLOT_KNOBS), figsize=(3.2 * len(PLOT_KNOBS), 3.4), sharey=True)
    for ax, (title, kw) in zip(axes, PLOT_KNOBS):
        p = probabilities(logits[None].float(), **kw)[0][order]
        ax.bar(range(bars), p.tolist(), color="#5470c6")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(bars), [repr(x)[1:-1][:8] for x in labels], rotation=90, fontsize=8)
    axes[0].set_ylabel("probability of the next token")
    fig.suptitle(f"next token after {prompt_text!r}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the HTML page -----------------------------------------------------------------------------------

def page_data(engine: Engine, tr: Trace, keep: int) -> dict:
    """Per step: the top ``keep`` logits (exact) and a histogram of the rest (for the tail's mass)."""
    tok, steps = engine.tokenizer, []
    for s in tr.steps:
        z = s.logits
        k = min(keep, z.numel())
        top = z.topk(k)
        rest = z[z < top.values[-1]] if k < z.numel() else z[:0]
        hist = []
        if rest.numel():
            counts = torch.histc(rest, bins=HIST_BINS, min=rest.min().item(), max=rest.max().item())
            edges = torch.linspace(rest.min().item(), rest.max().item(), HIST_BINS + 1)
            hist = [[round(((edges[i] + edges[i + 1]) / 2).item(), 5), int(c)] for i, c in enumerate(counts) if c > 0]
        steps.append({"chosen": s.token, "ids": top.indices.tolist(), "logits": [round(v, 5) for v in top.values.tolist()],
                      "tail": hist, "text": s.text})
    return {"prompt": tok.decode(tr.prompt), "steps": steps, "vocab": int(tr.steps[0].logits.numel()) if tr.steps else 0,
            "pieces": {str(t): piece(tok, t) for st in steps for t in st["ids"]},
            "knobs": {"temperature": tr.params.temperature, "top_k": tr.params.top_k or 0, "top_p": tr.params.top_p or 1.0},
            "exact": all(not st["tail"] for st in steps)}


HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Generation explorer</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em;max-width:70em}#text span{cursor:pointer;white-space:pre-wrap;
border-radius:3px}.sel{outline:2px solid #333}.bar{height:14px;background:#5470c6;display:inline-block}
td{padding:1px 6px;font-family:monospace}label{margin-right:1.5em}.note{color:#666}</style></head><body>
<h2>Generation explorer</h2><p class="note">__NOTE__</p>
<p><label>temperature <input id="t" type="range" min="0" max="2" step="0.05"> <b id="tv"></b></label>
<label>top-k <input id="k" type="range" min="0" max="200" step="1"> <b id="kv"></b></label>
<label>top-p <input id="p" type="range" min="0.05" max="1" step="0.01"> <b id="pv"></b></label></p>
<p>Text, each token coloured by its probability under these settings (click a token for its distribution):</p>
<div id="text"></div><h3 id="head"></h3><table id="tab"></table>
<script id="data" type="application/json">__DATA__</script><script>
const D=JSON.parse(document.getElementById('data').textContent);let cur=0;
const $=id=>document.getElementById(id);
function dist(s,T,K,P){ // the sampler of phases/phase1_transformer/sampling.py, on the stored logits
  const n=s.logits.length; if(T===0){const q=new Array(n).fill(0);q[0]=1;return {p:q,tail:0,H:0};}
  let z=s.logits.map(v=>v/T); let keep=z.map(()=>true); let tailOk=true;
  if(K>0){for(let i=0;i<n;i++){if(i>=K&&z[i]<z[K-1])keep[i]=false;} if(K<=n)tailOk=false;}
  const m=z[0]; let e=z.map((v,i)=>keep[i]?Math.exp(v-m):0);
  let tail=0; if(tailOk){for(const [c,cnt] of s.tail){tail+=cnt*Math.exp(c/T-m);}}
  let Z=e.reduce((a,b)=>a+b,0)+tail; let q=e.map(v=>v/Z); tail/=Z;
  if(P<1){let before=0;for(let i=0;i<n;i++){if(before>=P)q[i]=0;before+=e[i]/Z;} if(before>=P)tail=0;
    const S=q.reduce((a,b)=>a+b,0)+tail; q=q.map(v=>v/S); tail/=S;}
  let H=-q.reduce((a,v)=>a+(v>0?v*Math.log(v):0),0); return {p:q,tail:tail,H:H};}
function color(p){const h=Math.round(120*Math.min(1,Math.max(0,(Math.log10(Math.max(p,1e-6))+4)/4)));
  return `hsl(${h},70%,82%)`;}
function knobs(){return [parseFloat($('t').value),parseInt($('k').value),parseFloat($('p').value)];}
function draw(){const [T,K,P]=knobs();$('tv').textContent=T;$('kv').textContent=K||'off';$('pv').textContent=P>=1?'off':P;
  const t=$('text');t.innerHTML='';const pre=document.createElement('span');pre.textContent=D.prompt;pre.style.color='#888';t.appendChild(pre);
  D.steps.forEach((s,i)=>{const d=dist(s,T,K,P);const j=s.ids.indexOf(s.chosen);const p=j>=0?d.p[j]:0;
    const e=document.createElement('span');e.textContent=s.text;e.style.background=color(p);e.title='p='+p.toFixed(4);
    if(i===cur)e.className='sel';e.onclick=()=>{cur=i;draw();};t.appendChild(e);});
  const s=D.steps[cur];if(!s)return;const d=dist(s,T,K,P);
  $('head').textContent=`step ${cur}: entropy ${d.H.toFixed(3)} nats`+(d.tail>0?`, tail mass ${d.tail.toExponential(2)}`:'');
  let rows='';for(let i=0;i<Math.min(20,s.ids.length);i++){const id=s.ids[i];rows+=`<tr${id===s.chosen?' style="font-weight:bold"':''}>`+
    `<td>${JSON.stringify(D.pieces[id])}</td><td>${d.p[i].toFixed(4)}</td><td><span class="bar" style="width:${Math.round(300*d.p[i])}px"></span></td></tr>`;}
  $('tab').innerHTML=rows;}
$('t').value=D.knobs.temperature;$('k').value=D.knobs.top_k;$('p').value=D.knobs.top_p;
['t','k','p'].forEach(id=>$(id).oninput=draw);window.explorerDist=dist;draw();
</script></body></html>"""


def render_html(data: dict, description: str) -> str:
    note = (f"{html.escape(description)}. Logits stored: the top {len(data['steps'][0]['ids']) if data['steps'] else 0} "
            f"of {data['vocab']} per step" + (" (all of them: probabilities are exact)." if data["exact"] else
                                              "; the rest as a histogram, so tail probabilities are approximate."))
    payload = json.dumps(data).replace("</", "<\\/")
    return HTML.replace("__NOTE__", note).replace("__DATA__", payload)
