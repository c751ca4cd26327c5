#!/usr/bin/env python3
"""Tokenizer playground: see how the project's BPE tokenizer cuts text into tokens.

Usage (from the repository root):

    python tools/tokenizer_playground.py "Hello 🙂 world"    # stats, colour view, detail table
    python tools/tokenizer_playground.py -i                  # interactive: type text, see tokens
    python tools/tokenizer_playground.py --special           # the nine special tokens
    python tools/tokenizer_playground.py --vocab             # id ranges, longest tokens, merges
    python tools/tokenizer_playground.py --compare "Hello" "Hi there" "12345"
    python tools/tokenizer_playground.py "some text" --against OTHER_TOKENIZER_DIR
    python tools/tokenizer_playground.py --merges " the"     # how BPE built each token
    python tools/tokenizer_playground.py --chat              # a conversation and its loss mask

Which tokenizer: ``--tokenizer DIR``, else ``<base>/tokenizer`` (made by ``mini-nanochat
tokenizer train``), else a small one (vocab 2048, ~3 MB of the embedded corpus) that the
playground trains on first use and keeps in ``<base>/playground_tokenizer``. ``<base>`` is
``$MINI_NANOCHAT_BASE_DIR`` (default ``~/.cache/mini-nanochat``).

Flags combine; their views print in the order of the list above. Colour only on a
terminal (``--no-color`` or ``NO_COLOR`` turn it off, ``--color`` forces it).
What it leaves out: GPT-2/GPT-4 columns (their vocabularies must be downloaded; the
project runs offline) and a web UI. Everything shown comes from Phase 0: the rendering
(``visualize.py``), the special tokens and their purposes (``bpe.py``), the small
tokenizer's training (``trainer.py``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _view
from phases.common.console import UserError, run_command, use_color
from phases.common.paths import data_dir, tokenizer_dir, tool_dir
from phases.phase0_tokenizer.bpe import FILENAME, SPECIAL_TOKEN_PURPOSES as PURPOSES, BPETokenizer
from phases.phase0_tokenizer.chat import EXAMPLE as EXAMPLE_CHAT, ConversationError, render_conversation
from phases.phase0_tokenizer.corpus import ensure_embedded_corpus
from phases.phase0_tokenizer.trainer import TrainSettings, train_tokenizer
from phases.phase0_tokenizer.visualize import (SAMPLE_TEXT, WHITESPACE, colorize_tokens, display_width, merge_history,
                                               read_input, render_mask, split_characters, token_pieces, token_table,
                                               user_bytes)

PLAYGROUND_DIR = "playground_tokenizer"
PLAYGROUND_VOCAB = 2048          # small: trains in seconds, still learns common English words
PLAYGROUND_CHARS = 3_000_000     # ~3 MB of the embedded corpus
KEY = "(one colour per token · space → tab ↵ newline ␍ CR; ⟨F0 9F⟩ = bytes of a character split across tokens)"
KEY_PLAIN = KEY.replace("one colour per token", "| separates tokens")


def note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def describe(tok: BPETokenizer, path: Path) -> str:
    return f"{path} (vocab {tok.vocab_size}, {len(tok.merges)} merges)"


def load_dir(directory: Path | str, flag: str) -> tuple[BPETokenizer, str]:
    path = Path(directory).expanduser()
    file = path / FILENAME if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{flag} {directory}: no {FILENAME} there (make one with "
                        f"`mini-nanochat tokenizer train --out {directory}`)")
    tok = BPETokenizer.load(file)
    return tok, describe(tok, file)


def resolve_tokenizer(directory: Path | None, show_progress: bool) -> tuple[BPETokenizer, str]:
    """--tokenizer DIR, else the trained one, else the playground's small one (trained now if needed)."""
    if directory is not None:
        return load_dir(directory, "--tokenizer")
    main_file = tokenizer_dir() / FILENAME
    if main_file.is_file():
        return load_dir(main_file, "tokenizer")
    small = tool_dir(PLAYGROUND_DIR)
    if (small / FILENAME).is_file():
        note(f"no trained tokenizer at {main_file}; using the playground's small one "
             "(`mini-nanochat tokenizer train` makes the real one)")
        tok, desc = load_dir(small, "tokenizer")
        return tok, desc + " [small playground tokenizer]"
    note(f"no tokenizer at {main_file} yet, so the playground trains a small one now "
         f"(vocab {PLAYGROUND_VOCAB} on ~{PLAYGROUND_CHARS / 1e6:g} MB of the embedded corpus; "
         "the first run also builds that corpus). It is kept for next time.")
    info = ensure_embedded_corpus(data_dir("embedded"), show_progress=show_progress)
    settings = TrainSettings(PLAYGROUND_VOCAB, str(info.out_dir), PLAYGROUND_CHARS, 10_000)
    tok, seconds = train_tokenizer(settings, small, show_progress=show_progress)
    note(f"trained the small tokenizer in {seconds:.1f}s -> {small / FILENAME}")
    return tok, describe(tok, small / FILENAME) + " [small playground tokenizer]"


class Playground:
    def __init__(self, tok: BPETokenizer, name: str, color: bool, table: bool = True,
                 against: tuple[BPETokenizer, str] | None = None):
        self.tok, self.name, self.color, self.table, self.against = tok, name, color, table, against

    def title(self, text: str) -> str:
        return _view.bold(f"== {text}", self.color)

    @staticmethod
    def ratio(nbytes: int, ntokens: int) -> str:
        return f"{nbytes / ntokens:.2f}" if ntokens else "-"

    def one(self, tok: BPETokenizer, text: str) -> str:
        nbytes = len(data := user_bytes(text))   # the bytes typed: an invalid byte stays one byte
        ids = tok.encode_bytes(data)
        lines = [f"tokens {len(ids)}   characters {len(text)}   bytes {nbytes}   "
                 f"bytes/token {self.ratio(nbytes, len(ids))}   chars/token {self.ratio(len(text), len(ids))}",
                 "", colorize_tokens(tok, ids, self.color), "", KEY if self.color else KEY_PLAIN]
        if self.table and ids:
            lines += ["", token_table(tok, ids)]
        split = split_characters(tok, ids)
        for ch, first, last, raw in split[:5]:
            lines.append(f"note: {ch!r} (U+{ord(ch):04X}, bytes {raw.hex(' ').upper()}) is split "
                         f"across tokens {first}-{last}; each piece alone is not valid UTF-8")
        if len(split) > 5:
            lines.append(f"note: ... and {len(split) - 5} more characters split across tokens")
        return "\n".join(lines)

    def text(self, text: str) -> str:
        if self.against is None:
            return "\n".join([self.title("tokens"), self.one(self.tok, text)])
        other, other_name = self.against
        a, b = len(self.tok.encode_bytes(user_bytes(text))), len(other.encode_bytes(user_bytes(text)))
        verdict = ("the same number of tokens" if a == b else
                   f"{'main' if a < b else 'other'} needs {abs(a - b)} fewer token{'s' if abs(a - b) > 1 else ''} "
                   f"({100 * abs(a - b) / max(a, b):.0f}% fewer)")
        return "\n".join([self.title(f"main: {self.name}"), self.one(self.tok, text), "",
                          self.title(f"other: {other_name}"), self.one(other, text), "",
                          f"same text: main {a} tokens, other {b} tokens: {verdict}"])

    def special(self) -> str:
        rows = [(str(i), name, PURPOSES.get(name, "(not a nanochat token)"))
                for name, i in self.tok.special_tokens.items()]
        w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
        bos_as_text = len(self.tok.encode("<|bos|>"))
        return "\n".join([self.title(f"special tokens ({len(rows)})"),
                          *(f"{i:>{w0}}  {_view.bold(n.ljust(w1), self.color)}  {p}" for i, n, p in rows), "",
                          f"Typing a name is not the token: the text '<|bos|>' encodes to {bos_as_text} ordinary "
                          "tokens. Only code (render_conversation, encode(prepend=...)) inserts special "
                          "tokens, so a user cannot forge a turn boundary."])

    def vocab(self) -> str:
        tok, n = self.tok, len(self.tok.merges)
        kinds: dict[str, int] = {}
        pieces = token_pieces(tok, range(256, 256 + n))
        for p in pieces:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        longest = sorted(pieces, key=lambda p: (-len(p.raw), p.id))[:8]
        first = len(tok.vocab)
        lines = [self.title(f"vocabulary: {tok.vocab_size} ids"),
                 f"  {'0-255':>13}  {256:>6}  byte tokens: every byte value, so any text can be encoded",
                 f"  {f'256-{255 + n}':>13}  {n:>6}  merged tokens: merge k creates id 256 + k",
                 f"  {f'{first}-{tok.vocab_size - 1}':>13}  {len(tok.special_tokens):>6}  special tokens "
                 "(--special)",
                 "merged tokens by type: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])),
                 f"average merged token: {sum(len(p.raw) for p in pieces) / max(1, n):.1f} bytes",
                 "longest tokens:"]
        lines += [f"  {p.id:>6}  {len(p.raw):>3} bytes  '{p.label}'" for p in longest]
        for title, part in (("first merges (the most frequent pairs):", pieces[:6]),
                            ("last merges (rarer, longer pieces):", pieces[-6:])):
            lines.append(title)
            lines += [f"  #{p.id - 256:<5} {p.id:>6} = {tok.merges[p.id - 256][0]:>5} + "
                      f"{tok.merges[p.id - 256][1]:<5}  '{p.label}'" for p in part]
        return "\n".join(lines)

    def compare(self, texts: list[str]) -> str:
        toks = [("", self.tok)] + ([("other ", self.against[0])] if self.against else [])
        head = ["#", "text", "chars", "bytes"] + [h for p, _ in toks for h in (f"{p}tokens", f"{p}bytes/token")]
        rows = [head]
        for k, text in enumerate(texts):
            label = preview(text)
            nbytes = len(user_bytes(text))
            row = [str(k), label, str(len(text)), str(nbytes)]
            for _, tok in toks:
                ntok = len(tok.encode_bytes(user_bytes(text)))
                row += [str(ntok), self.ratio(nbytes, ntok)]
            rows.append(row)
        widths = [max(display_width(r[c]) for r in rows) for c in range(len(head))]
        out = [self.title(f"comparison of {len(texts)} texts")]
        for r in rows:
            out.append("  ".join(c + " " * (widths[i] - display_width(c)) if i == 1 else c.rjust(widths[i])
                                 for i, c in enumerate(r)).rstrip())
        if self.against:
            out.append(f"other = {self.against[1]}")
        return "\n".join(out + ["more bytes/token = better compression (more text per model step)"])

    def merges(self, arg: str) -> str:
        if arg.strip().lstrip("-").isdigit():
            token_id = int(arg)
            if not 0 <= token_id < self.tok.vocab_size:
                raise UserError(f"--merges {arg}: no such token id (ids are 0-{self.tok.vocab_size - 1})")
            return "\n".join([self.title(f"merge history of token {token_id}"), merge_history(self.tok, token_id)])
        ids = list(dict.fromkeys(self.tok.encode_bytes(user_bytes(arg))))  # each distinct token once, in order
        if not ids:
            raise UserError("--merges needs a token id or a non-empty text")
        out = [self.title(f"merge history of the {len(ids)} distinct tokens of {arg!r}")]
        for i in ids:
            out += ["", merge_history(self.tok, i)]
        return "\n".join(out)

    def chat(self, source: str | None) -> str:
        if source is None:
            convo, where = EXAMPLE_CHAT, "built-in example"
        else:
            where = "stdin" if source == "-" else source
            try:
                raw = (read_input("-") if source == "-" else Path(source).expanduser().read_bytes()).decode("utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise UserError(f"--chat {source}: cannot read it ({e.__class__.__name__}: {e})") from None
            try:
                convo = json.loads(raw)
            except json.JSONDecodeError as e:
                raise UserError(f"--chat {where}: not valid JSON (line {e.lineno}, column {e.colno}: "
                                f"{e.msg})") from None
            except RecursionError:
                raise UserError(f"--chat {where}: JSON nested too deeply to be a conversation") from None
        try:
            ids, mask = render_conversation(self.tok, convo, max_tokens=1 << 62)
        except ConversationError as e:
            raise UserError(f"--chat {where}: {e}") from None
        return "\n".join([self.title(f"conversation ({where}) as the model sees it in training"),
                          render_mask(self.tok, ids, mask, self.color)])


def preview(text: str, width: int = 40) -> str:
    """A one-line preview of a text (visible whitespace), cut to ``width`` columns."""
    shown = "".join(WHITESPACE.get(c, c) for c in text)
    while display_width(shown) > width:
        shown = shown[:-2] + "…"
    return shown


HELP = """type text to tokenize it, or a command:
  special              the special tokens and what they are for
  vocab                vocabulary statistics
  compare A | B | C    compare texts (separated by ' | ')
  merges ID|TEXT       how BPE built a token (or each token of TEXT)
  chat [FILE]          a conversation coloured by its loss mask (built-in example without FILE)
  table on|off         show or hide the detail table
  help                 this help
  quit                 leave (also exit, Ctrl-D, Ctrl-C)
  \\TEXT                tokenize TEXT even if it starts with a command word"""


def repl(pg: Playground) -> None:
    try:
        import readline  # noqa: F401  (line editing and history where available)
    except ImportError:
        pass
    tty = sys.stdin.isatty()
    if hasattr(sys.stdin, "reconfigure"):   # a line with invalid UTF-8 keeps its bytes (user_bytes) instead of failing
        sys.stdin.reconfigure(errors="surrogateescape")
    if tty:
        print("interactive mode: type text to tokenize it; 'help' lists commands, 'quit' leaves")
    while True:
        try:
            line = input("tok> " if tty else "")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        word, _, rest = line.strip().partition(" ")
        try:
            if line.startswith("\\"):
                print(pg.text(line[1:]))
            elif not line.strip():
                continue
            elif line.strip() in ("quit", "exit", "q"):
                return
            elif line.strip() == "help":
                print(HELP)
            elif line.strip() == "special":
                print(pg.special())
            elif line.strip() == "vocab":
                print(pg.vocab())
            elif word == "compare" and rest:
                print(pg.compare(line.split("compare ", 1)[1].split(" | ")))
            elif word == "merges" and rest:
                print(pg.merges(line.split("merges ", 1)[1]))
            elif line.strip() == "chat" or (word == "chat" and rest):
                print(pg.chat(rest.strip() or None))
            elif word == "table" and rest in ("on", "off"):
                pg.table = rest == "on"
                print(f"detail table {rest}")
            else:
                print(pg.text(line))
        except UserError as e:
            print(f"error: {e}")
        print()


EPILOG = ("examples:\n" + __doc__.split("\n\n")[2]
          + "\n\n'-' as TEXT reads standard input; --chat FILE takes {\"messages\": [...]} or a bare list.")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python tools/tokenizer_playground.py", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="See how the project's BPE tokenizer cuts text into tokens.")
    p.add_argument("text", nargs="?", help="text to tokenize ('-' reads standard input)")
    p.add_argument("-i", "--interactive", action="store_true", help="type texts and commands, see tokens")
    p.add_argument("--special", action="store_true", help="list the special tokens with ids and purposes")
    p.add_argument("--vocab", action="store_true", help="vocabulary size, id ranges, longest tokens, merges")
    p.add_argument("--compare", nargs="+", metavar="TEXT", help="a table of tokens and bytes/token per text")
    p.add_argument("--against", type=Path, metavar="DIR",
                   help="a second tokenizer shown side by side (on TEXT, --compare, or a sample text)")
    p.add_argument("--merges", metavar="ID_OR_TEXT", help="merge tree of a token id (a whole number), or of each token of a text")
    p.add_argument("--chat", nargs="?", const="", metavar="FILE",
                   help="render a JSON conversation ('-' = stdin; none = built-in example) by loss mask")
    p.add_argument("--tokenizer", type=Path, metavar="DIR", help="tokenizer folder (default <base>/tokenizer)")
    p.add_argument("--table", action=argparse.BooleanOptionalAction, default=True,
                   help="show the per-token detail table (default on)")
    colors = p.add_mutually_exclusive_group()
    colors.add_argument("--no-color", dest="color", action="store_false", default=None,
                        help="no ANSI colours (NO_COLOR and pipes also turn them off)")
    colors.add_argument("--color", dest="color", action="store_true", help="colours even when piped")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars while training")
    return p


def run(args: argparse.Namespace) -> None:
    if args.text == "-" and args.chat == "-":
        raise UserError("TEXT and --chat cannot both read standard input ('-')")
    color = use_color(sys.stdout, args.color)
    against = load_dir(args.against, "--against") if args.against is not None else None  # before any training
    tok, name = resolve_tokenizer(args.tokenizer, show_progress=not args.no_progress)
    pg = Playground(tok, name, color, table=args.table, against=against)
    text = read_input("-").decode("utf-8", "surrogateescape") if args.text == "-" else args.text
    if against and text is None and not args.compare and not args.interactive:
        text = SAMPLE_TEXT  # --against alone: compare on a sample of prose, code, numbers, emoji
    views = [(args.special, pg.special), (args.vocab, pg.vocab),
             (text is not None, lambda: pg.text(text)),
             (bool(args.compare), lambda: pg.compare(args.compare)),
             (args.merges is not None, lambda: pg.merges(args.merges)),
             (args.chat is not None, lambda: pg.chat(args.chat or None))]
    outputs = [show() for wanted, show in views if wanted]  # all first: a bad input prints only its error
    print(f"tokenizer: {name}\n")
    print("\n\n".join(outputs), end="\n" if outputs else "")
    if args.interactive or not outputs:
        repl(pg)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
