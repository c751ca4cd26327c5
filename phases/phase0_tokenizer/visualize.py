"""Showing tokens to a human: colour streams, tables, loss masks and merge trees.

Every place that displays tokens (``mini-nanochat tokenizer encode``, the demo and
``tools/tokenizer_playground.py``) calls these functions, so they all show the same thing.
Two rules make the display honest:

- **exact bytes**: a token is shown from its own raw bytes (``tok.token_bytes``), never
  from ``decode([id])``. A character cut across tokens (an emoji is 4 bytes; BPE may
  keep them in 2 tokens) is shown as its bytes in hex, ``⟨F0 9F⟩`` ``⟨99 82⟩``, not as
  two U+FFFD marks; joining every piece's bytes gives back ``tok.decode_bytes(ids)``;
- **visible whitespace**: ``·`` space, ``→`` tab, ``↵`` newline (followed by a real
  newline, so the layout survives), ``␍`` carriage return. Other control characters
  (ESC could drive your terminal) are shown as hex too.

What it leaves out: HTML output, terminal-width wrapping, grapheme clusters (a flag
emoji is two code points and may still be drawn as two pieces).

Run: ``python -m phases.phase0_tokenizer.visualize "Hello 🙂 world"`` shows the tokens of a
text with the trained tokenizer (``mini-nanochat tokenizer encode`` mounts the same
``add_arguments`` / ``run``; the playground shows every view).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Sequence

from phases.common.console import paint, use_color

WHITESPACE = {" ": "·", "\t": "→", "\r": "␍", "\n": "↵"}
SAMPLE_TEXT = ("Hello world! The tokenizer splits text into pieces: it's 2025, "   # prose, numbers,
               "naïve café 🙂 日本語.\n    def f(x): return x ** 2")               # accents, emoji, code
# Pastel backgrounds (256-colour codes) with black text: readable on dark and light
# terminals; six, so neighbours always differ and the pattern does not look like meaning.
BACKGROUNDS = ("30;48;5;217", "30;48;5;151", "30;48;5;223", "30;48;5;153", "30;48;5;183", "30;48;5;158")
SPECIAL = "1;97;45"  # bold white on magenta: a special token is never ordinary text
TRAINED = ("30;48;5;114", "30;48;5;150")  # two greens, alternating so boundaries stay visible
CONTEXT = ("38;5;250;48;5;238", "38;5;250;48;5;240")  # two greys: read, not trained on
DELIM = "|"
TURN_ENDS = ("<|user_end|>", "<|assistant_end|>")


@dataclass(frozen=True)
class Piece:
    """One token ready for display."""
    id: int
    raw: bytes    # the token's exact bytes (for a special token: its name)
    text: str     # stream form: visible whitespace, "↵" followed by a real newline
    label: str    # one-line form for tables and trees
    kind: str     # special partial-UTF-8 byte whitespace word number punctuation symbol mixed

    @property
    def special(self) -> bool:
        return self.kind == "special"


def utf8_segments(data: bytes) -> list[tuple[str | None, bytes]]:
    """Split bytes into runs of valid UTF-8 ``(text, raw)`` and invalid bytes ``(None, raw)``."""
    out: list[tuple[str | None, bytes]] = []
    i = 0
    while i < len(data):
        try:
            out.append((data[i:].decode("utf-8"), data[i:]))
            break
        except UnicodeDecodeError as e:  # e.start/e.end are relative to data[i:]
            if e.start:
                out.append((data[i:i + e.start].decode("utf-8"), data[i:i + e.start]))
            bad = data[i + e.start:i + e.end]
            if out and out[-1][0] is None:  # "99" then "82": one run ⟨99 82⟩
                out[-1] = (None, out[-1][1] + bad)
            else:
                out.append((None, bad))
            i += e.end
    return out


def _hex(raw: bytes) -> str:
    return "⟨" + raw.hex(" ").upper() + "⟩"


def _show(data: bytes, show_whitespace: bool, one_line: bool) -> str:
    out = []
    for text, raw in utf8_segments(data):
        if text is None:
            out.append(_hex(raw))
            continue
        for ch in text:
            if ch in WHITESPACE and (show_whitespace or one_line):
                out.append(WHITESPACE[ch] + ("\n" if ch == "\n" and not one_line else ""))
            elif unicodedata.category(ch) == "Cc" and ch not in WHITESPACE:
                out.append(_hex(ch.encode("utf-8")))  # never send raw ESC/BEL to a terminal
            else:
                out.append(ch)
    return "".join(out)


def _kind(tok, token_id: int, raw: bytes) -> str:
    if tok.is_special(token_id):
        return "special"
    if any(text is None for text, _ in utf8_segments(raw)):
        return "partial-UTF-8"
    if token_id < 256:
        return "byte"
    text = raw.decode("utf-8")
    core = text.strip()
    if not core:
        return "whitespace"
    if core.isalpha():
        return "word"
    if core.isdigit():
        return "number"
    if all(c.isascii() or unicodedata.category(c)[0] == "P" for c in core) and not any(
            c.isalnum() or c.isspace() for c in core):
        return "punctuation"
    if not any(c.isalnum() or c.isspace() for c in core):
        return "symbol"  # emoji, arrows, maths signs beyond ASCII
    return "mixed"


def token_pieces(tok, ids: Sequence[int], show_whitespace: bool = True) -> list[Piece]:
    """One display piece per token; ``b"".join(p.raw for p in pieces) == tok.decode_bytes(ids)``."""
    pieces = []
    for i in ids:
        raw = tok.token_bytes(int(i))
        if tok.is_special(int(i)):
            name = raw.decode("utf-8")
            pieces.append(Piece(int(i), raw, name, name, "special"))
        else:
            pieces.append(Piece(int(i), raw, _show(raw, show_whitespace, False),
                                _show(raw, True, True), _kind(tok, int(i), raw)))
    return pieces


def _paint_lines(text: str, code: str, color: bool) -> str:
    # Paint each line on its own, so a background never bleeds over a line break.
    return "\n".join(paint(part, code, color) if part else part for part in text.split("\n"))


def colorize_tokens(tok, ids: Sequence[int], color: bool, show_whitespace: bool = True) -> str:
    """The tokens as one stream: a background colour per token, or ``|`` between tokens."""
    pieces = token_pieces(tok, ids, show_whitespace)
    if not color:
        return DELIM.join(p.text for p in pieces)
    return "".join(_paint_lines(p.text, SPECIAL if p.special else BACKGROUNDS[k % len(BACKGROUNDS)], True)
                   for k, p in enumerate(pieces))


def display_width(text: str) -> int:
    """Terminal columns: CJK and emoji take two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def token_table(tok, ids: Sequence[int], max_hex_bytes: int = 12) -> str:
    """Rows: index, id, text, byte count (of the real token bytes), the bytes in hex, type."""
    pieces = token_pieces(tok, ids)
    hexes = [p.raw[:max_hex_bytes].hex(" ").upper() + (" …" if len(p.raw) > max_hex_bytes else "")
             for p in pieces]
    rows = [("#", "id", "text", "bytes", "hex", "type")]
    rows += [(str(k), str(p.id), p.label, str(len(p.raw)), h, p.kind) for k, (p, h) in enumerate(zip(pieces, hexes))]
    widths = [max(display_width(r[c]) for r in rows) for c in range(6)]
    right = {0, 1, 3}  # numbers line up on the right
    lines = []
    for r in rows:
        cells = [" " * (widths[c] - display_width(r[c])) + r[c] if c in right else _pad(r[c], widths[c])
                 for c in range(6)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def split_characters(tok, ids: Sequence[int]) -> list[tuple[str, int, int, bytes]]:
    """Characters whose bytes are spread over several tokens: ``(char, first, last, bytes)``."""
    owner: list[int] = []  # token index of every byte
    for k, i in enumerate(ids):
        owner += [k] * len(tok.token_bytes(int(i)))
    data = tok.decode_bytes(ids)
    out, p = [], 0
    while p < len(data):
        b = data[p]
        n = 1 if b < 0x80 else 2 if b >> 5 == 6 else 3 if b >> 4 == 14 else 4 if b >> 3 == 30 else 1
        try:
            ch = data[p:p + n].decode("utf-8")
        except UnicodeDecodeError:  # a stray byte: not a character at all
            p += 1
            continue
        if owner[p] != owner[p + n - 1]:
            out.append((ch, owner[p], owner[p + n - 1], data[p:p + n]))
        p += n
    return out


def render_mask(tok, ids: Sequence[int], mask: Sequence[int], color: bool) -> str:
    """A conversation coloured by loss mask (green = trained on, grey = context) + a legend.

    Without colour, each run of trained-on tokens is wrapped in ``[ ]``. A line break is
    added after each turn's end token, for reading only.
    """
    if len(ids) != len(mask):
        raise ValueError(f"ids and mask differ in length ({len(ids)} vs {len(mask)})")
    pieces = token_pieces(tok, ids)
    out: list[str] = []
    for k, (p, m) in enumerate(zip(pieces, mask)):
        if color:
            code = (TRAINED if m else CONTEXT)[k % 2] + (";1" if p.special else "")
            out.append(_paint_lines(p.text, code, True) + ("\n" if p.text in TURN_ENDS else ""))
            continue
        opens = m and (k == 0 or not mask[k - 1])
        closes = m and (k + 1 == len(mask) or not mask[k + 1])
        sep = "" if k == 0 or opens or (not m and mask[k - 1]) or out[-1].endswith("\n") else DELIM
        out.append(sep + ("[" if opens else "") + p.text + ("]" if closes else ""))
        if p.text in TURN_ENDS:  # display only: one turn per line (the ids are unchanged)
            out.append("\n")
    trained = sum(1 for m in mask if m)
    if color:
        legend = (paint(" trained on ", TRAINED[0], True) + " loss computed (mask 1)   "
                  + paint(" context ", CONTEXT[0], True) + " read only (mask 0)")
    else:
        legend = "[ … ] trained on: loss computed (mask 1); outside brackets: context, read only (mask 0)"
    return (f"{''.join(out).rstrip(chr(10))}\n\n{legend}\n"
            f"{len(ids)} tokens, {trained} trained on ({100 * trained / max(1, len(ids)):.0f}%)")


def merge_history(tok, token_id: int) -> str:
    """How BPE built a token, as a tree down to its bytes (merge k creates id 256 + k)."""
    token_id = int(token_id)
    raw = tok.token_bytes(token_id)  # raises a clear ValueError when out of range
    if tok.is_special(token_id):
        return (f"{token_id} {raw.decode()} is a special token: added after the merges, "
                "never built from bytes")
    label = lambda i: _show(tok.token_bytes(i), True, True)  # noqa: E731
    lines: list[str] = []
    ranks: list[int] = []

    def walk(node: tuple, prefix: str, branch: str, child_prefix: str) -> None:
        i = node[0]
        if len(node) == 1:
            lines.append(f"{prefix}{branch}{i} '{label(i)}' = byte 0x{i:02X}")
            return
        left, right = node[1], node[2]
        ranks.append(i - 256)
        lines.append(f"{prefix}{branch}{i} '{label(i)}' = merge #{i - 256}: {left[0]} + {right[0]}")
        walk(left, prefix + child_prefix, "├── ", "│   ")
        walk(right, prefix + child_prefix, "└── ", "    ")

    walk(tok.merge_tree(token_id), "", "", "")
    if not ranks:
        return lines[0] + "  (one of the 256 base tokens: no merge needed)"
    lines.append(f"{len(raw)} byte(s), {len(ranks)} merge(s); in training order: "
                 + ", ".join(f"#{r}" for r in sorted(ranks)))
    return "\n".join(lines)


def add_arguments(parser) -> None:
    from pathlib import Path
    parser.add_argument("text", help="the text to encode ('-' reads standard input)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default <base>/tokenizer)")
    parser.add_argument("--ids-only", action="store_true", help="print only the ids, space-separated")
    parser.add_argument("--no-color", action="store_true", help="no ANSI colours (NO_COLOR is honoured too)")


def user_bytes(text: str) -> bytes:
    """The bytes behind a command-line argument or a line read from stdin.

    Python decodes them with ``surrogateescape``: an undecodable byte becomes one of
    U+DC80-U+DCFF; this turns it back into that byte (a lone surrogate that did not come
    from there, which no terminal can type, keeps its 3-byte ``surrogatepass`` form).
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def read_input(text: str) -> bytes:
    """``text`` as bytes, or standard input's bytes for ``-``: what the user gave, byte for byte."""
    import sys
    return sys.stdin.buffer.read() if text == "-" else user_bytes(text)


def run(args) -> None:
    """Encode a text with the trained tokenizer and show its tokens (``mini-nanochat tokenizer encode``)."""
    from phases.common.paths import tokenizer_dir
    from phases.phase0_tokenizer.bpe import BPETokenizer
    tok = BPETokenizer.load(args.tokenizer or tokenizer_dir())
    data = read_input(args.text)
    ids = tok.encode_bytes(data)     # the bytes as given: invalid UTF-8 stays itself
    if args.ids_only:
        print(" ".join(map(str, ids)))
        return
    print(colorize_tokens(tok, ids, color=use_color() and not args.no_color))
    print(f"ids: {ids}")
    print(f"{len(data)} bytes -> {len(ids)} tokens")


if __name__ == "__main__":
    import sys

    from phases.common.console import command
    sys.exit(command("Encode a text and show its tokens (colour per token, visible whitespace).", add_arguments, run))
