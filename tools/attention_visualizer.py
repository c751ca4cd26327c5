#!/usr/bin/env python3
"""Attention visualiser: which earlier tokens each token of a prompt looks at, per layer and head.

Usage (from the repository root):

    python tools/attention_visualizer.py "The cat sat on the mat. The cat"   # last layer, head 0 + entropy table
    python tools/attention_visualizer.py "The cat sat" --layer 0 --head 2     # another layer and head
    python tools/attention_visualizer.py "The cat sat" --png out/ --html out/attention.html
    python tools/attention_visualizer.py --ids 72,105,33 --bos --json        # ids in, JSON out
    python tools/attention_visualizer.py "..." --window-pattern SSSL --window 8 --n-kv-head 2
    python tools/attention_visualizer.py "Hello" --checkpoint RUN_DIR          # a trained run (or cpu_demo@250)

The maps come from ``GPT.attention_maps``: the model's real attention path (RoPE, QK-norm,
grouped-query attention, sliding windows) run through ``explicit_attention``, which keeps
softmax(q k^T / sqrt(D)) that the fused kernel never returns. Row t of a map is how query
token t spreads its attention (summing to 1) over keys 0..t; the future and keys outside a
sliding window are masked (blank in the terminal, grey in the pictures).

``--checkpoint`` takes any run the project trained (a run name, run folder, ``RUN@STEP`` or
step folder) and opens it with Phase 2's ``load.load_model``: its weights and the
tokenizer it trained with. Without it the model is freshly initialised (``--preset``,
default cpu-demo), so the maps show random projections, not learned behaviour; the output
says so. Tokens come from ``--tokenizer DIR`` (default: the run's, else ``<base>/tokenizer``);
without a trained tokenizer the prompt's UTF-8 bytes are the ids. Pictures are drawn with
matplotlib (viridis; PNGs and the HTML page need the tools extra, the terminal view does not).
Colour only on a terminal (``--no-color``, ``NO_COLOR``). What it leaves out: text in the
PNGs (the HTML page has the labels), attention over a KV cache during generation, bertviz's
neuron view.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

import _view
from _attention_pictures import (COLORMAP, MASKED, color_index, grid_rgb, heatmap_rgb,  # noqa: F401
                                 png_bytes, render_html)
from phases.common.console import UserError, paint, run_command, use_color
from phases.common.files import output_dir, output_file
from phases.common.paths import tokenizer_dir
from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
from phases.phase0_tokenizer.visualize import display_width, token_pieces
from phases.phase1_transformer.config import PRESETS, preset
from phases.phase1_transformer.layers import attention_mask
from phases.phase1_transformer.model import GPT
from phases.phase2_training.load import load_model

DEFAULT_PROMPT = "The cat sat on the mat. The cat"
RAMP = "·░▒▓█"             # plain-text shades, by sqrt(weight): < .04 < .16 < .36 < .64 <= 1
MASKED_BG = "48;5;238"
UNTRAINED = ("note: untrained weights. q and k are random projections, so these maps show no learned "
             "structure (no previous-token or <|bos|> heads yet). They are not uniform either: QK-norm "
             "fixes the length of q and k, so scores spread by about qk_scale^2 = 1.4 and rows look "
             "patchy; and as every block's output projection starts at zero, all layers read the same "
             "input. Phase 2 trains a model: pass it with --checkpoint.")


# -- the model ------------------------------------------------------------------------------
def build_fresh(args, vocab_needed: int) -> GPT:
    overrides = {k: v for k, v in (("depth", args.depth), ("n_kv_head", args.n_kv_head),
                                   ("window_pattern", args.window_pattern),
                                   ("sequence_len", args.sequence_len)) if v is not None}
    config = preset(args.preset, **overrides)
    if vocab_needed > config.vocab_size:
        config = config.replace(vocab_size=vocab_needed)
    return GPT.build(config, seed=args.seed).eval()


def override_windows(model: GPT, window: int) -> int:
    """Give every "S" layer a window of ``window`` tokens (the real one is >= 128: too long to see)."""
    pattern = model.config.window_pattern.upper()
    chars = [pattern[i % len(pattern)] for i in range(model.config.n_layer)]
    chars[-1] = "L"  # as GPTConfig.window_sizes: the last layer always sees everything
    model.windows = [window if c == "S" else w for c, w in zip(chars, model.windows)]
    return chars.count("S")


# -- tokens ----------------------------------------------------------------------------------
class ByteTokens:
    """Stand-in when no tokenizer is trained: ids 0-255 are bytes, 256 is <|bos|>."""
    vocab_size, bos_token_id = 257, 256

    def token_bytes(self, i: int) -> bytes:
        return bytes([i]) if i < 256 else (b"<|bos|>" if i == 256 else f"<{i}>".encode())

    def is_special(self, i: int) -> bool:
        return i >= 256


def prompt_tokens(args, run_tok=None) -> tuple[object, list[int], list[str], str]:
    """(tokenizer, ids, labels, where the tokens come from); ``run_tok``: the checkpoint's tokenizer."""
    if args.text is not None and args.ids is not None:
        raise UserError("give a prompt TEXT or --ids, not both")
    ids = None
    if args.ids is not None:
        try:
            ids = [int(x) for x in args.ids.replace(",", " ").split()]
        except ValueError:
            raise UserError(f"--ids takes comma-separated integers, got {args.ids!r}") from None
    tok_dir = Path(args.tokenizer).expanduser() if args.tokenizer else tokenizer_dir()
    if run_tok is not None and not args.tokenizer:
        tok, source = run_tok, f"the tokenizer of {args.checkpoint}"
    elif args.tokenizer or (tok_dir / FILENAME).exists():
        tok, source = BPETokenizer.load(tok_dir), f"tokenizer {tok_dir}"
    else:
        tok, source = ByteTokens(), "raw UTF-8 bytes (no trained tokenizer)"
        print(f"note: no trained tokenizer at {tok_dir / FILENAME}; the ids are the prompt's UTF-8 bytes "
              "(`mini-nanochat tokenizer train` makes the real one)", file=sys.stderr)
    text = DEFAULT_PROMPT if args.text is None else args.text
    if ids is None:
        ids = list(text.encode("utf-8")) if isinstance(tok, ByteTokens) else tok.encode(text)
    elif not isinstance(tok, ByteTokens):  # (byte mode: the model's vocabulary decides)
        bad = [i for i in ids if not 0 <= i < tok.vocab_size]
        if bad:
            raise UserError(f"--ids: {bad[0]} is outside the vocabulary (0..{tok.vocab_size - 1})")
    if args.bos:
        ids.insert(0, tok.bos_token_id)
    if not ids:
        raise UserError("the prompt is empty: give some text, --ids or --bos")
    if min(ids) < 0:
        raise UserError(f"--ids: token ids are >= 0, got {min(ids)}")
    return tok, ids, [p.label for p in token_pieces(tok, ids)], source


# -- numbers ------------------------------------------------------------------------------------
def row_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row (last dim) of a probability tensor; 0 * log 0 counts as 0."""
    return torch.special.entr(weights).sum(-1)


def summarize(maps: list[torch.Tensor], windows: list[int], n_kv_head: int | None = None) -> list[dict]:
    """Per layer and head (maps are (H, T, T)): mean row entropy, and weight on self / previous / first."""
    rows = []
    for l, a in enumerate(maps):
        H, T, _ = a.shape
        allowed = attention_mask(T, T, windows[l]).sum(-1).float()
        ent, self_w = row_entropy(a).mean(-1), a.diagonal(dim1=-2, dim2=-1).mean(-1)
        prev = a.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1).tolist() if T > 1 else [None] * H
        first = a[:, 1:, 0].mean(-1).tolist() if T > 1 else [None] * H  # (row 0 has no previous token)
        for h in range(H):
            rows.append(dict(layer=l, head=h, kv_head=h // (H // (n_kv_head or H)),
                             window=windows[l], entropy=float(ent[h]), uniform_entropy=float(allowed.log().mean()),
                             self=float(self_w[h]), prev=prev[h], first=first[h]))
    return rows


def summary_table(rows: list[dict], T: int, first_name: str) -> list[list[str]]:
    """The summary as strings, a header row first; "(max)" is the entropy of a uniform row."""
    return [["layer", "head", "kv", "window", "entropy", "(max)", "self", "prev", first_name]] + [
        [str(r["layer"]), str(r["head"]), str(r["kv_head"]), "full" if r["window"] >= T - 1 else str(r["window"]),
         f"{r['entropy']:.2f}", f"{r['uniform_entropy']:.2f}"] + [_view.pct(r[k]) for k in ("self", "prev", "first")]
        for r in rows]


# -- the terminal view ------------------------------------------------------------------------------
def ansi256(rgb) -> int:
    """Nearest colour of the xterm 6x6x6 cube."""
    levels = (0, 95, 135, 175, 215, 255)
    r, g, b = (min(range(6), key=lambda i: abs(levels[i] - int(c))) for c in rgb)
    return 16 + 36 * r + 6 * g + b


def _fit(label: str, width: int) -> str:
    while display_width(label) > width:
        label = label[:-2] + "…"
    return " " * (width - display_width(label)) + label


def _cell(weight: float | None, color: bool) -> str:
    """One cell, two characters wide; ``None`` = masked."""
    if weight is None:
        return paint("  ", MASKED_BG, True) if color else "  "
    if color and COLORMAP is not None:
        return paint("  ", f"48;5;{ansi256(COLORMAP[color_index(weight)])}", True)
    return RAMP[min(4, int(math.sqrt(max(0.0, weight)) * 5))] * 2


def render_heatmap(a: np.ndarray, mask: np.ndarray, labels: list[str], color: bool, max_tokens: int) -> str:
    """Rows = queries (with labels), columns = keys, two characters per cell."""
    T = len(labels)
    n = min(T, max_tokens)
    lw = min(12, max(display_width(x) for x in labels[:n]))
    pad = " " * (lw + 5)
    lines = [(pad + "".join(f"{j // 10 % 10:>2}" if j % 10 == 0 and j else "  " for j in range(n))).rstrip()] * (n > 10)
    lines.append(pad + "".join(f"{j % 10:>2}" for j in range(n)) + "   <- key")
    for t in range(n):
        cells = [_cell(a[t, j] if mask[t, j] else None, color) for j in range(n)]
        top = int(np.argmax(np.where(mask[t], a[t], -1)))
        lines.append(f"{t:>3} {_fit(labels[t], lw)} {''.join(cells)}   max {a[t, top]:.2f} at {top} "
                     f"{labels[top][:12]}")
    if n < T:
        lines.append(f"(showing the first {n} of {T} tokens; --max-tokens {T} shows all)")
    if color:
        swatches = " ".join(f"{_cell(w, True)} {w:g}" for w in (0, 0.05, 0.2, 0.5, 1))
        lines.append(f"colour by sqrt(weight): {swatches}   {_cell(None, True)} masked")
    else:
        lines.append("shade by sqrt(weight): · <0.04  ░ <0.16  ▒ <0.36  ▓ <0.64  █ >=0.64; "
                     "blank = masked (future, or outside the window)")
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="attention_visualizer.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show a GPT's attention maps for a prompt: a terminal heat map, PNGs, an HTML page\n"
                    "and an entropy table per layer and head.",
        epilog="examples (from the repository root):\n" + __doc__.split("\n\n")[2])
    p.add_argument("text", nargs="?", metavar="TEXT", help=f"the prompt (default: {DEFAULT_PROMPT!r})")
    p.add_argument("--ids", help="token ids instead of TEXT, e.g. 1,2,3")
    p.add_argument("--bos", action="store_true", help="prepend <|bos|>, as every training document starts")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder (default: <base>/tokenizer; "
                                                      "without one, the ids are UTF-8 bytes)")
    m = p.add_argument_group("model (a fresh, untrained one unless --checkpoint)")
    m.add_argument("--checkpoint", metavar="RUN", help="a trained run: its name, folder, RUN@STEP or a step folder "
                                                       "(Phase 2's checkpoints; its tokenizer comes with it)")
    m.add_argument("--preset", default="cpu-demo", choices=list(PRESETS), help="size of the fresh model (cpu-demo)")
    m.add_argument("--depth", type=int, metavar="N", help="override the preset's depth (width follows the depth dial)")
    m.add_argument("--n-kv-head", type=int, metavar="N", help="key/value heads: fewer than the query heads = GQA")
    m.add_argument("--window-pattern", metavar="SSSL", help="sliding-window pattern (S short, L full), tiled")
    m.add_argument("--sequence-len", type=int, metavar="T", help="override the preset's sequence length")
    m.add_argument("--window", type=int, metavar="N", help="give S layers a window of N tokens (the real "
                   "short window is >= 128 tokens, longer than most prompts)")
    m.add_argument("--seed", type=int, default=0, metavar="N", help="initialisation seed of the fresh model (0)")
    v = p.add_argument_group("views")
    v.add_argument("--layer", type=int, default=-1, metavar="L",
                   help="layer of the terminal heat map (default -1: the last)")
    v.add_argument("--head", type=int, default=0, metavar="H", help="head for the terminal heat map (default: 0)")
    v.add_argument("--max-tokens", type=int, default=40, metavar="N", help="terminal: show at most N tokens (40)")
    v.add_argument("--png", metavar="DIR", help="write layer{L}_head{H}.png for every head, and grid.png")
    v.add_argument("--cell", type=int, metavar="PX", help="pixels per cell in the PNGs (default: 512/T, 4..16)")
    v.add_argument("--html", metavar="FILE", help="write one self-contained HTML page with every layer and head")
    v.add_argument("--json", action="store_true", help="print JSON (tokens, summary, the selected map) instead")
    c = v.add_mutually_exclusive_group()
    c.add_argument("--color", dest="color", action="store_const", const=True, help="force colour")
    c.add_argument("--no-color", dest="color", action="store_const", const=False, help="no colour (also NO_COLOR)")
    return p.parse_args(argv)


def pick(value: int, count: int, name: str) -> int:
    if not -count <= value < count:
        raise UserError(f"--{name} {value} is out of range: the model has {count} {name}s (0..{count - 1})")
    return value % count


def run(args) -> None:
    for name in ("depth", "n_kv_head", "sequence_len", "window", "cell", "max_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    png_dir = output_dir(args.png, "--png") if args.png else None       # outputs checked before the work
    html = output_file(args.html, "--html") if args.html else None
    model, run_tok, meta = load_model(args.checkpoint) if args.checkpoint else (None, None, None)
    tok, ids, labels, source = prompt_tokens(args, run_tok)
    if model is not None:
        origin = f"checkpoint {args.checkpoint} (step {meta['step']})"
    else:
        model = build_fresh(args, tok.vocab_size)
        origin = f"freshly initialised {args.preset} (seed {args.seed}), NOT trained"
    cfg, T = model.config, len(ids)
    if max(ids) >= cfg.vocab_size:
        raise UserError(f"token id {max(ids)} is outside the model's vocabulary ({cfg.vocab_size}); "
                        "use the tokenizer the model was trained with")
    if T > cfg.sequence_len:
        raise UserError(f"{T} tokens is longer than the model's sequence_len ({cfg.sequence_len})")
    if args.window and not override_windows(model, args.window):
        print(f"note: --window changes only S layers; the pattern is {cfg.window_pattern!r} "
              "(add --window-pattern SSSL)", file=sys.stderr)
    layer, head = pick(args.layer, cfg.n_layer, "layer"), pick(args.head, cfg.n_head, "head")
    attn = [a[0] for a in model.attention_maps(torch.tensor([ids]))]         # L x (H, T, T)
    rows = summarize(attn, model.windows, cfg.n_kv_head)
    maps = [a.numpy() for a in attn]
    masks = [attention_mask(T, T, w).numpy() for w in model.windows]
    first_name = "bos" if ids[0] == tok.bos_token_id else "first"
    header = [f"model: {origin}: {cfg.n_layer} layers x {cfg.n_head} heads ({cfg.n_kv_head} key/value), "
              f"head_dim {cfg.head_dim}, windows {model.windows}",
              f"tokens: {T} from {source}"]
    if not args.checkpoint:
        header.append(UNTRAINED)
    files = []
    if png_dir:
        out = png_dir
        cell = args.cell or max(4, min(16, 512 // T))
        for l in range(cfg.n_layer):
            for h in range(cfg.n_head):
                (out / f"layer{l}_head{h}.png").write_bytes(png_bytes(heatmap_rgb(maps[l][h], masks[l], cell)))
        grid_cell = max(1, min(cell, 2400 // (T * max(cfg.n_layer, cfg.n_head))))
        (out / "grid.png").write_bytes(png_bytes(grid_rgb(maps, masks, grid_cell)))
        files.append(f"{out}/layer*_head*.png ({cfg.n_layer * cfg.n_head} files, {T * cell}x{T * cell} px), "
                     f"{out}/grid.png (layers top to bottom, heads left to right)")
    if html:
        path = html
        path.write_text(render_html(maps, masks, labels, rows, layer, head, header,
                                    summary_table(rows, T, first_name), first_name), encoding="utf-8")
        files.append(str(path))
    if args.json:
        print(json.dumps({"model": {"origin": origin, "fresh": not args.checkpoint, "config": cfg.to_dict(),
                                    "windows": model.windows},
                          "tokens": [{"index": t, "id": i, "label": x} for t, (i, x) in enumerate(zip(ids, labels))],
                          "selected": {"layer": layer, "head": head,
                                       "weights": np.round(maps[layer][head].astype(float), 5).tolist()},
                          "summary": rows, "files": files}, ensure_ascii=False))
        return
    color = use_color(sys.stdout, force=args.color)
    print("\n".join(header))
    window = "full" if model.windows[layer] >= T - 1 else model.windows[layer]
    print(f"\nlayer {layer}, head {head} (key/value head {head // (cfg.n_head // cfg.n_kv_head)}, window {window}): "
          "row = query token, column = the key it attends to")
    print(render_heatmap(maps[layer][head], masks[layer], labels, color, args.max_tokens))
    print(f"\nper layer and head, averaged over the {T} query rows: entropy of a row in nats ((max) = every "
          f"allowed key equal),\nshare of weight on the token itself, the previous token and the "
          f"{'<|bos|>' if first_name == 'bos' else 'first'} token")
    table = summary_table(rows, T, first_name)
    print(_view.table(table[0], table[1:], right=set(range(len(table[0]))), rule=False))
    if T > 1:
        n = torch.arange(1, T + 1).float()
        print(f"(a uniform head with the full window would score self {float((1 / n).mean()):.1%}, "
              f"prev and {first_name} {float((1 / n[1:]).mean()):.1%})")
    for f in files:
        print(f"wrote {f}")


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
