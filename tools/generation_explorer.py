#!/usr/bin/env python3
"""Generation explorer: watch how temperature, top-k and top-p shape what a model writes.

Usage (from the repository root):

    python tools/generation_explorer.py "The meaning of life is" --run cpu_demo       # coloured text + table
    python tools/generation_explorer.py "Once upon" --run cpu_demo --sweep temperature=0,0.7,1.5
    python tools/generation_explorer.py "Once upon" --run cpu_demo --sweep top_p=0.5,0.9,1 --seed 3
    python tools/generation_explorer.py "The cat" --run cpu_demo --tree 3x2               # branching token tree
    python tools/generation_explorer.py "The cat" --run cpu_demo --branch 2:1             # take rank 1 at step 2
    python tools/generation_explorer.py "The cat" --run cpu_demo --softcap                # what the softcap does
    python tools/generation_explorer.py "The cat" --run cpu_demo --html explore.html      # sliders in a browser
    python tools/generation_explorer.py "The cat" --run cpu_demo --plot knobs.png         # the knobs as bar charts
    python tools/generation_explorer.py --run cpu_demo -i                                 # interactive
    python tools/generation_explorer.py "Hello"                                           # a fresh, untrained model

Views:

- **the generation, coloured by surprisal** (-ln p of each chosen token under the model:
  green = expected, red = surprising; ``--color-by entropy`` colours by how unsure the model
  was before choosing), then a **per-step table**: the chosen token, its probability, the
  entropy, and the top alternatives with their probabilities (``--top N``, ``--steps N``).
- **sweeps** (``--sweep temperature=0,0.7,1.5``, also ``top_k=`` and ``top_p=``): the same
  prompt and seed under each value, with mean surprisal, mean entropy and distinct tokens.
- **a branching token tree** (``--tree WxD``): the W most likely tokens at each of the first
  D steps, every leaf continued; the prefix each branch shares is prefilled once and copied
  between KV-cache rows (``KVCache.copy_prefix``), and each level decodes as one batch.
- **a branch** (``--branch STEP:RANK``): regenerate from step STEP taking the RANK-th most
  likely token instead (rank 0 = the most likely), after rolling the cache back
  (``KVCache.truncate``): nothing before STEP is recomputed.
- **the softcap** (``--softcap``): the first step's distribution with and without the
  ``15 tanh(z / 15)`` cap (entropy, top tokens, largest logit).
- **an HTML page** (``--html FILE``): self-contained (no network); per step the top
  ``--html-top`` logits (default 200) plus a 64-bin histogram of the rest, and sliders for
  temperature, top-k and top-p that re-normalise them in the browser. With a vocabulary of
  at most ``--html-top`` tokens the page holds every logit and its probabilities are exact;
  otherwise the tail is approximated by its histogram (the page says so).
- **interactive** (``-i``): type prompts; ``:t 0.7``, ``:k 20``, ``:p 0.9``, ``:seed 3``,
  ``:n 40`` set the knobs; ``:steps``, ``:tree 3x2``, ``:branch 2:1``, ``:softcap``, ``:help``, ``:q``.

Everything runs through Phase 6's engine (prefill, decode, the engine's own sampling with a
seeded generator per row) and Phase 1's sampler (``probabilities``, ``entropy``), so what you
see is what ``mini-nanochat generate`` does with the same knobs and seed. Without ``--run``
the model is a fresh ``--preset`` (default cpu-demo) with the trained tokenizer of
``<base>/tokenizer`` if there is one, else a byte-level tokenizer: its next-token
distribution is nearly uniform (entropy close to ln V), which the output points out.
Colour only on a terminal (``--no-color``, ``NO_COLOR``); piped output is plain text.
What it leaves out: beam search, repetition penalties, per-layer logit lens.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

# run as `python tools/generation_explorer.py`: use the phases next to this file
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from phases.common.console import UserError, paint, run_command, use_color
from phases.phase1_transformer.config import PRESETS, preset
from phases.phase6_inference.engine import Engine, SamplingParams
from phases.phase6_inference.explore import Trace, branch, piece, softcap_view, trace, tree

UNTRAINED = ("note: untrained weights. The lm_head starts near zero, so every next-token distribution is "
             "almost uniform (entropy close to ln V = {lnv:.2f} nats) and the knobs have little to shape. "
             "Train a model (mini-nanochat demo) and pass it with --run.")
# surprisal (nats) -> colour, from "expected" to "surprising"
SCALE = [(0.5, "1;32"), (1.5, "32"), (3.0, "33"), (5.0, "31"), (float("inf"), "1;31")]
HIST_BINS = 64


# -- the model ------------------------------------------------------------------------------------

def load(args) -> tuple[Engine, bool, str]:
    """(engine, trained?, description) for --run or a fresh --preset model."""
    if args.run:
        from phases.phase2_training.checkpoint import load_model
        model, tok, meta = load_model(args.run, device=args.device)
        return Engine(model, tok), True, f"run {args.run}, step {meta.get('step', '?')}"
    from phases.common.paths import tokenizer_dir
    from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
    from phases.phase1_transformer.model import GPT
    tdir = Path(args.tokenizer) if args.tokenizer else tokenizer_dir()
    tok = BPETokenizer.load(tdir) if (tdir / FILENAME).is_file() else BPETokenizer([])  # bytes + specials
    cfg = preset(args.preset, vocab_size=tok.vocab_size)
    model = GPT.build(cfg, device=args.device, seed=args.model_seed)
    return Engine(model, tok), False, f"fresh {args.preset} model (seed {args.model_seed}), vocab {tok.vocab_size}"


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


def parse_sweep(spec: str) -> tuple[str, list]:
    name, _, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    if name not in ("temperature", "top_k", "top_p") or not values:
        raise UserError(f"--sweep {spec!r}: use temperature=..., top_k=... or top_p=... with comma-separated values")
    cast = int if name == "top_k" else float
    try:
        return name, [cast(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--sweep {spec!r}: values must be numbers") from None


def parse_pair(spec: str, sep: str, what: str) -> tuple[int, int]:
    try:
        a, b = spec.lower().split(sep)
        return int(a), int(b)
    except ValueError:
        raise UserError(f"{what} {spec!r}: expected two whole numbers like 3{sep}2") from None


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


# -- the command line --------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="generation_explorer.py", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=__doc__.split("\n\n")[0],
                                epilog="Examples:\n" + __doc__.split("Views:")[0].split("Usage (from the repository root):")[1])
    p.add_argument("prompt", nargs="?", help="the text to continue (omit with -i)")
    p.add_argument("--run", help="a trained run (name, folder or checkpoint); default: a fresh model")
    p.add_argument("--preset", default="cpu-demo", choices=list(PRESETS), help="size of the fresh model (cpu-demo)")
    p.add_argument("--model-seed", type=int, default=0, help="initialisation seed of the fresh model (0)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder for a fresh model (default <base>/tokenizer)")
    p.add_argument("--device", default="cpu")
    g = p.add_argument_group("sampling (as mini-nanochat generate)")
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    g.add_argument("--top-k", type=int, default=0, help="0 = off (default)")
    g.add_argument("--top-p", type=float, default=1.0, help="1 = off (default)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--max-tokens", type=int, default=32)
    g.add_argument("--chat", action="store_true", help="treat the prompt as a user message (SFT models)")
    v = p.add_argument_group("views")
    v.add_argument("--top", type=int, default=5, help="alternatives per step in the table (5)")
    v.add_argument("--steps", type=int, default=16, help="rows of the per-step table (16; 0 = none)")
    v.add_argument("--color-by", choices=("surprisal", "entropy"), default="surprisal")
    v.add_argument("--sweep", action="append", default=[], metavar="KNOB=V1,V2,...",
                   help="compare values of temperature, top_k or top_p (repeatable)")
    v.add_argument("--tree", metavar="WxD", help="branching token tree: W alternatives at each of D steps")
    v.add_argument("--branch", metavar="STEP:RANK", help="regenerate from STEP with the RANK-th most likely token")
    v.add_argument("--softcap", action="store_true", help="the first step with and without the logit softcap")
    v.add_argument("--html", metavar="FILE", help="write a self-contained page with temperature/top-k/top-p sliders")
    v.add_argument("--html-top", type=int, default=200, help="logits kept per step in the page (200)")
    v.add_argument("--plot", metavar="PNG", help="bar charts of the first step under several knobs (needs matplotlib)")
    v.add_argument("--json", action="store_true", help="print JSON instead")
    v.add_argument("-i", "--interactive", action="store_true", help="type prompts and commands")
    c = p.add_mutually_exclusive_group()
    c.add_argument("--color", dest="color", action="store_const", const=True, help="force colour")
    c.add_argument("--no-color", dest="color", action="store_const", const=False, help="no colour (also NO_COLOR)")
    args = p.parse_args(argv)
    if not args.prompt and not args.interactive:
        p.error("give a PROMPT, or -i for the interactive mode")
    return args


def params_of(args) -> SamplingParams:
    try:
        return SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k or None,
                              top_p=args.top_p if args.top_p < 1 else None, seed=args.seed, use_tools=True)
    except ValueError as e:
        raise UserError(str(e)) from None


def encode(engine: Engine, text: str, chat: bool) -> list[int]:
    tok = engine.tokenizer
    if chat:
        from phases.phase0_tokenizer.chat import render_for_completion
        return render_for_completion(tok, [{"role": "user", "content": text}, {"role": "assistant", "content": ""}])
    return tok.encode(text, prepend="<|bos|>")


def explore(engine: Engine, args, prompt_text: str, color: bool, out) -> dict:
    """Run the views the flags ask for on one prompt; print them; return them as a dict."""
    params, prompt = params_of(args), encode(engine, prompt_text, args.chat)
    result: dict = {}
    tr = trace(engine, prompt, params, args.top)
    result["generation"] = {"text": tr.text, **summary(tr), "steps": [
        {"token": s.token, "text": s.text, "p": s.p_model, "p_knobs": s.p_sample, "entropy": s.entropy,
         "alternatives": [{"text": a[1], "p": a[2]} for a in s.alternatives]} for s in tr.steps]}
    if not args.json:
        out.write(paint(prompt_text, "2", color) + coloured(tr, color, args.color_by) + "\n")
        if color:
            out.write(legend(color, args.color_by) + "\n")
        sm = summary(tr)
        out.write(f"{sm['tokens']} tokens, {sm['distinct']} distinct, mean surprisal {sm['mean_surprisal']:.2f} nats, "
                  f"mean entropy {sm['mean_entropy']:.2f} nats\n")
        if args.steps:
            out.write("\n".join(step_table(tr, args.steps)) + "\n")
    if args.branch:
        step, rank = parse_pair(args.branch, ":", "--branch")
        br = branch(engine, tr, step, rank, args.top)
        result["branch"] = {"step": step, "rank": rank, "text": br.text, **summary(br)}
        if not args.json:
            out.write(f"\nbranch at step {step}, rank {rank} ({br.steps[step].text!r} instead of "
                      f"{tr.steps[step].text!r}; the first {step} tokens reused from the cache):\n")
            out.write(paint(prompt_text, "2", color) + coloured(br, color, args.color_by) + "\n")
    for spec in args.sweep:
        name, values = parse_sweep(spec)
        rows = []
        for value in values:
            try:
                p = replace(params, **{name: value if name == "temperature" else (value or None)})
            except ValueError as e:
                raise UserError(f"--sweep {spec!r}: {e}") from None
            t = trace(engine, prompt, p, args.top)
            rows.append({name: value, "text": t.text, **summary(t)})
        result.setdefault("sweeps", []).append({"knob": name, "rows": rows})
        if not args.json:
            out.write(f"\nsweep over {name} (seed {params.seed}):\n")
            for r in rows:
                out.write(f"  {name}={r[name]:<6} surprisal {r['mean_surprisal']:5.2f}  entropy {r['mean_entropy']:5.2f}  "
                          f"distinct {r['distinct']:>3}  {r['text'][:70]!r}\n")
    if args.tree:
        width, depth = parse_pair(args.tree, "x", "--tree")
        if width < 1 or depth < 1:
            raise UserError("--tree needs W and D of at least 1")
        leaves = tree(engine, prompt, width, depth, replace(params, max_tokens=min(params.max_tokens, 12)))
        result["tree"] = [{"path": [{"text": engine.tokenizer.decode([t]), "p": p} for t, p in lf["path"]],
                           "continuation": lf["text"]} for lf in leaves]
        if not args.json:
            out.write(f"\nbranching tree: the {width} most likely tokens at each of {depth} step(s), then continued "
                      f"(prefix prefilled once, copied between cache rows):\n")
            out.write("\n".join(render_tree(leaves, depth, color)) + "\n")
    if args.softcap:
        if not engine.model.config.softcap:
            raise UserError("this model has no softcap (softcap = 0)")
        sc = softcap_view(engine, prompt)
        result["softcap"] = sc
        if not args.json:
            out.write(f"\nthe logit softcap ({sc['softcap']:g} tanh(z/{sc['softcap']:g})) at the first step:\n")
            for name in ("raw", "capped"):
                d = sc[name]
                tops = "  ".join(f"{t!r} {p:.3f}" for t, p in d["top"][:5])
                out.write(f"  {name:<7} logits in [{d['min_logit']:.2f}, {d['max_logit']:.2f}], entropy "
                          f"{d['entropy']:.3f} nats  {tops}\n")
    if args.plot:
        plot_knobs(tr.steps[0].logits, engine.tokenizer, prompt_text, args.plot)
        result["plot"] = args.plot
        if not args.json:
            out.write(f"\nwrote {args.plot}\n")
    if args.html:
        data = page_data(engine, tr, args.html_top)
        Path(args.html).write_text(render_html(data, args.description), encoding="utf-8")
        result["html"] = args.html
        if not args.json:
            out.write(f"\nwrote {args.html} (open it in a browser; the sliders re-normalise the stored logits)\n")
    return result


HELP = """commands: :t T  :k K  :p P  :seed N  :n N  (set temperature, top-k, top-p, seed, max tokens)
          :steps  (the last prompt's per-step table)  :tree WxD  :branch STEP:RANK  :softcap
          :help  :q (quit); anything else is a prompt"""


def interactive(engine: Engine, args, color: bool, inp=None, out=None) -> None:
    inp, out = inp or sys.stdin, out or sys.stdout
    last = None
    setters = {":t": ("temperature", float), ":k": ("top_k", int), ":p": ("top_p", float), ":seed": ("seed", int),
               ":n": ("max_tokens", int)}
    out.write(HELP + "\n")
    for line in inp:
        line = line.rstrip("\n")
        cmd, _, rest = line.strip().partition(" ")
        try:
            if cmd in (":q", ":quit", ":exit"):
                break
            if cmd == ":help":
                out.write(HELP + "\n")
            elif cmd in setters:
                name, cast = setters[cmd]
                setattr(args, name, cast(rest))
                params_of(args)                                   # validates
                out.write(f"{name} = {getattr(args, name)}\n")
            elif cmd in (":steps", ":tree", ":branch", ":softcap"):
                if last is None:
                    out.write("type a prompt first\n")
                    continue
                view = argparse.Namespace(**{**vars(args), "sweep": [], "tree": None, "branch": None,
                                             "softcap": False, "html": None, "plot": None, "steps": 0})
                if cmd == ":steps":
                    view.steps = 10 ** 6
                elif cmd == ":softcap":
                    view.softcap = True
                else:
                    setattr(view, cmd[1:], rest.strip())
                explore(engine, view, last, color, out)
            elif line.strip():
                last = line
                explore(engine, argparse.Namespace(**{**vars(args), "sweep": [], "tree": None, "branch": None,
                                                      "softcap": False, "html": None, "plot": None}), last, color, out)
        except (UserError, ValueError) as e:
            out.write(f"error: {e}\n")
        out.flush()


def main(argv=None) -> int:
    args = parse_args(argv)

    def go():
        engine, trained, args.description = load(args)
        color = use_color(sys.stdout, args.color)
        if not trained and not args.json:
            print(paint(UNTRAINED.format(lnv=math.log(engine.tokenizer.vocab_size)), "2", color), file=sys.stderr)
        if args.interactive:
            return interactive(engine, args, color)
        result = explore(engine, args, args.prompt, color, sys.stdout)
        if args.json:
            print(json.dumps({"model": args.description, **result}))
    return run_command(go)


if __name__ == "__main__":
    sys.exit(main())
