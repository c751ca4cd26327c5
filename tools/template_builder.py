#!/usr/bin/env python3
"""Template builder: write a training conversation and see exactly what the model will learn from it.

Usage (from the repository root):

    python tools/template_builder.py new --out mine.jsonl          # build one interactively
    python tools/template_builder.py show mine.jsonl               # ids | token | special | mask, coloured
    python tools/template_builder.py check mine.jsonl --seq-len 256  # the SFT loader's rules, per line
    python tools/template_builder.py export mine.jsonl --form list --out bare.jsonl
    python tools/template_builder.py import-openai openai.jsonl --out mine.jsonl
    python tools/template_builder.py roundtrip mine.jsonl          # render -> parse back -> identical?
    python tools/template_builder.py jinja --out chat_template.jinja --check mine.jsonl

A conversation file is JSON Lines, each line a bare array of messages or ``{"messages": [...]}``.
``new`` asks for a system message, then user and assistant turns; in an assistant turn a
line ``>>> 23+17`` is a calculator call (Phase 6's calculator fills in its output, or type
``= 40``), other lines are text, an empty line ends the turn. ``jinja`` writes our chat
format as a Hugging Face ``chat_template`` (with ``{% generation %}`` markers for TRL's
``assistant_only_loss``) and proves, conversation by conversation, that it renders the
same ids and loss mask as ``render_conversation``.

It is a view over ``phases/phase0_tokenizer/chat.py`` (rendering), ``phases/phase8_sft/
conversations.py`` (reading, the loader's rules) and ``template.py`` (parse back, OpenAI,
Jinja). Exit status: 0 fine, 1 a check found problems, 2 a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _view  # noqa: F401,E402  (puts this repository's root first on sys.path, as every tool)

from phases.common.console import UserError, paint, run_command, use_color  # noqa: E402
from phases.common.files import atomic_write_text, output_file, read_text  # noqa: E402
from phases.common.paths import tokenizer_dir  # noqa: E402
from phases.phase0_tokenizer.chat import ConversationError, render_conversation  # noqa: E402
from phases.phase0_tokenizer.visualize import CONTEXT, SPECIAL, TRAINED, render_mask, token_pieces  # noqa: E402
from phases.phase8_sft import conversations, template  # noqa: E402


def load_tokenizer(path: Path | None):
    from phases.phase0_tokenizer.bpe import BPETokenizer
    return BPETokenizer.load(path or tokenizer_dir())  # a missing one is a one-line UserError


def read_lines(path: Path) -> list[tuple[int, str]]:
    text = read_text(path, "", give="a JSONL file")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:                            # nothing to show, check or convert: never "0 of 0 pass", exit 0
        raise UserError(f"{path} holds no conversation")
    return lines


def records(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) of every line; a bad line is a usage error naming it."""
    out = []
    for n, line in read_lines(path):
        try:
            out.append((n, conversations.parse_line(line)))
        except ConversationError as e:
            raise UserError(f"{path}, line {n}: {e}") from None
    return out


def table(tok, ids, mask, color: bool) -> str:
    """One row per token: position, id, the token, special or not, the loss mask."""
    rows = [f"{'pos':>4}  {'id':>6}  {'token':<24} {'special':<8} mask"]
    for k, (p, m) in enumerate(zip(token_pieces(tok, ids), mask)):
        label = p.label if len(p.label) <= 24 else p.label[:23] + "…"
        cells = f"{k:>4}  {p.id:>6}  {label:<24} {'yes' if p.special else '':<8} {m}"
        code = SPECIAL if p.special and not m else (TRAINED if m else CONTEXT)[0]
        rows.append(paint(cells, code, color) if color else cells)
    return "\n".join(rows)


def show(tok, record: dict, color: bool, as_table: bool) -> str:
    ids, mask = render_conversation(tok, record, max_tokens=1 << 62)
    return table(tok, ids, mask, color) if as_table else render_mask(tok, ids, mask, color)


def problems(tok, record: dict, seq_len: int) -> list[str]:
    """What would keep the SFT loader from training on ``record`` as it is."""
    ids, mask = render_conversation(tok, record, max_tokens=1 << 62)
    found = []
    if len(ids) > seq_len + 1:
        found.append(f"{len(ids)} tokens: longer than a row of {seq_len + 1}, the SFT rows drop it (never cut)")
    ids2, mask2 = template.jinja_ids_and_mask(tok, record)
    if (ids2, mask2) != (ids, mask):
        found.append("the Jinja template renders it differently (adjacent text parts? `normalise` joins them)")
    if render_conversation(tok, template.parse_tokens(tok, ids), max_tokens=1 << 62) != (ids, mask):
        found.append("parsing its tokens back does not give the same conversation")
    return found


def build_interactively(ask=None, say=print) -> dict:
    """A conversation from prompts (``ask`` defaults to ``input``)."""
    ask = ask or input
    try:
        from phases.phase6_inference.calculator import calculate
    except ImportError:  # Phase 6 not installed: outputs must be typed
        calculate = None
    messages = []
    system = ask("system message (empty for none)> ").strip()
    if system:
        messages.append({"role": "system", "content": system})
    while True:
        user = ask("user (empty line to finish)> ").strip()
        if not user:
            break
        messages.append({"role": "user", "content": user})
        say("assistant: text lines; '>>> expr' calls the calculator, '= result' gives its output; empty line ends")
        parts: list[dict] = []
        while True:
            line = ask("  > ")
            if not line.strip():
                break
            if line.startswith(">>>"):
                expr = line[3:].strip()
                parts.append({"type": "python", "text": expr})
                result = calculate(expr) if calculate else None
                if result is not None:
                    parts.append({"type": "python_output", "text": result})
                    say(f"    calculator: {result}")
            elif line.startswith("=") and parts and parts[-1]["type"] in ("python", "python_output"):
                if parts[-1]["type"] == "python_output":      # overrides the calculator's answer
                    parts.pop()
                parts.append({"type": "python_output", "text": line[1:].strip()})
            else:
                text = line if not parts or parts[-1]["type"] != "text" else "\n" + line
                parts.append({"type": "text", "text": text})
        messages.append({"role": "assistant", "content": parts})
    if not messages or messages[-1]["role"] != "assistant":
        raise UserError("a conversation needs at least one user turn and its assistant answer")
    return conversations.check_conversation(template.normalise({"messages": messages}, merge_system=False))


def plural(n: int, word: str = "conversation") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_new(args, tok, color) -> int:
    try:
        record = build_interactively()
    except EOFError:                         # stdin closed (Ctrl-D, or a pipe that ran dry) mid-conversation
        raise UserError("the input ended before the conversation was finished; nothing was written") from None
    print(show(tok, record, color, as_table=False))
    for p in problems(tok, record, args.seq_len):
        print(f"warning: {p}")
    if args.out:
        old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        atomic_write_text(args.out, old + conversations.to_line(record, args.form) + "\n")
        print(f"appended to {args.out}")
    else:
        print(conversations.to_line(record, args.form))
    return 0


def cmd_check(args, tok, color) -> int:
    bad, lines = 0, read_lines(args.file)
    for n, line in lines:
        try:
            found = problems(tok, conversations.parse_line(line), args.seq_len)
        except ConversationError as e:
            found = [str(e)]
        for p in found:
            print(f"line {n}: {p}")
        bad += bool(found)
    total = len(lines)
    print(paint(f"{total - bad} of {plural(total)} pass", "32" if not bad else "31", color))
    return 1 if bad else 0


def cmd_roundtrip(args, tok, color) -> int:
    bad = 0
    for n, record in records(args.file):
        ids, mask = render_conversation(tok, record, max_tokens=1 << 62)
        back = template.parse_tokens(tok, ids)
        same = render_conversation(tok, back, max_tokens=1 << 62) == (ids, mask)
        same = same and back["messages"] == template.normalise(record)["messages"]
        bad += not same
        print(f"line {n}: {'identical' if same else 'DIFFERENT'} ({len(ids)} tokens)")
    return 1 if bad else 0


def cmd_jinja(args, tok, color) -> int:
    if args.out:
        atomic_write_text(args.out, template.CHAT_TEMPLATE)
        print(f"wrote {args.out}: put it next to a Hugging Face tokenizer as chat_template.jinja, "
              "or set tokenizer.chat_template to its text")
    else:
        print(template.CHAT_TEMPLATE)
    if not args.check:
        return 0
    bad = 0
    for n, record in records(args.check):
        same = template.jinja_ids_and_mask(tok, record) == render_conversation(tok, record, max_tokens=1 << 62)
        bad += not same
        if not same:
            print(f"line {n}: the Jinja template renders other ids or another mask")
    total = len(records(args.check))
    print(f"{total - bad} of {plural(total)}: same ids and same loss mask as render_conversation")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="template_builder.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Files live under $MINI_NANOCHAT_BASE_DIR (the tokenizer: <base>/tokenizer).")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer folder (default <base>/tokenizer)")
    ap.add_argument("--no-color", action="store_true", help="no ANSI colours (NO_COLOR is honoured too)")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    new = sub.add_parser("new", help="build a conversation interactively")
    new.add_argument("--out", type=Path, help="append it to this JSONL file (else print it)")
    show_p = sub.add_parser("show", help="token ids, special tokens and loss mask of each conversation")
    show_p.add_argument("--line", type=int, help="only this line of the file")
    show_p.add_argument("--stream", action="store_true", help="one coloured stream instead of a table")
    chk = sub.add_parser("check", help="validate with the rules the SFT loader applies (exit 1 on problems)")
    rt = sub.add_parser("roundtrip", help="render -> parse back -> identical? (exit 1 if not)")
    exp = sub.add_parser("export", help="rewrite a file in one JSONL form")
    exp.add_argument("--out", type=Path, required=True)
    imp = sub.add_parser("import-openai", help="OpenAI-style messages (tool_calls, tool results) -> our form")
    imp.add_argument("--out", type=Path, required=True)
    for p in (show_p, chk, rt, exp, imp):
        p.add_argument("file", type=Path, help="a JSONL file ('-' reads standard input)")
    for p in (new, exp, imp):
        p.add_argument("--form", choices=conversations.FORMS, default="messages",
                       help="messages: {\"messages\": [...]} (default); list: a bare array")
    for p in (new, chk):
        p.add_argument("--seq-len", type=int, default=2048, help="training row length T (default 2048)")
    jin = sub.add_parser("jinja", help="our chat format as a Hugging Face Jinja chat_template")
    jin.add_argument("--out", type=Path, help="write it here (else print it)")
    jin.add_argument("--check", type=Path, metavar="FILE", help="prove it renders FILE's conversations identically")
    args = ap.parse_args(argv)
    color = use_color() and not args.no_color

    def run() -> int:
        if getattr(args, "out", None) is not None:   # a folder, or a path under a file: an error before the work
            args.out = output_file(args.out, "--out")
        if args.cmd == "import-openai":
            out = []
            for n, line in read_lines(args.file):
                try:
                    obj = json.loads(line)
                    out.append(conversations.check_conversation(
                        template.from_openai(obj["messages"] if isinstance(obj, dict) else obj)))
                except (ValueError, KeyError, TypeError, AttributeError) as e:   # ConversationError is a ValueError
                    raise UserError(f"{args.file}, line {n}: {e}") from None
            print(f"{plural(conversations.write_conversations(args.out, out, args.form))} -> {args.out}")
            return 0
        if args.cmd == "export":
            n = conversations.write_conversations(args.out, [r for _, r in records(args.file)], args.form)
            print(f"{plural(n)} -> {args.out} ({args.form} form)")
            return 0
        tok = load_tokenizer(args.tokenizer)
        if args.cmd == "show":
            for n, record in records(args.file):
                if args.line is None or args.line == n:
                    print(f"== line {n}\n{show(tok, record, color, as_table=not args.stream)}\n")
            return 0
        return {"new": cmd_new, "check": cmd_check, "roundtrip": cmd_roundtrip, "jinja": cmd_jinja}[args.cmd](
            args, tok, color)

    status = {"code": 0}
    rc = run_command(lambda: status.update(code=run()))
    return rc or status["code"]


if __name__ == "__main__":
    sys.exit(main())
