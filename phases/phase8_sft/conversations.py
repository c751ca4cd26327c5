"""Conversation files: JSONL in the two forms people use, read with line-numbered errors.

One conversation per line, in either form (the dataset inspector and the template builder
accept and write both):

    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    {"messages": [{"role": "user", "content": "Hi"}, ...], "answer": "..."}

The object form may carry other keys beside ``messages`` (``answer``: the checkable final
answer of a problem); they are kept. A conversation is valid when Phase 0's
``render_conversation`` accepts it (roles alternate from ``user``, an optional leading
``system``, assistant parts of type ``text`` / ``python`` / ``python_output``), it has
at least one supervised token, and no message is empty. ``check_conversation`` applies
exactly these rules without a tokenizer.

What it leaves out: other chat schemas (ShareGPT's ``from``/``value``; the template
builder imports OpenAI-style tool calls), compressed files.

Run: ``python -m phases.phase8_sft.conversations FILE.jsonl`` checks a file and counts it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

from phases.common.console import UserError
from phases.common.files import atomic_write_text, read_text
from phases.phase0_tokenizer.chat import ConversationError, render_conversation

FORMS = ("messages", "list")


class _Shapes:
    """A stand-in tokenizer: every text is one token, so rendering checks only the structure."""

    def encode(self, text: str) -> list[int]:
        return [0]

    def encode_special(self, name: str) -> int:
        return 0


def check_conversation(conversation) -> dict:
    """Return ``{"messages": [...], **extra}`` or raise ``ConversationError`` naming the problem."""
    if isinstance(conversation, dict):
        record = dict(conversation)
    elif isinstance(conversation, list):
        record = {"messages": conversation}
    else:
        raise ConversationError(f"expected a JSON array of messages or an object with 'messages', "
                                f"got {type(conversation).__name__}")
    _, mask = render_conversation(_Shapes(), record, max_tokens=1 << 62)   # Phase 0's rules
    for i, m in enumerate(record["messages"]):
        parts = m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}]
        if not parts or not any(p["text"].strip() for p in parts):
            raise ConversationError(f"message {i} ({m['role']}) is empty")
    if not any(mask):
        raise ConversationError("no assistant message: nothing to learn from this conversation")
    return record


def parse_line(line: str):
    """One JSONL line -> a checked record; ``ConversationError`` for bad JSON or a bad conversation."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ConversationError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:                      # 100,000 nested '[': no conversation is that deep
        raise ConversationError("invalid JSON (nested too deeply)") from None
    return check_conversation(obj)


def read_conversations(path: str | Path, skip_bad: bool = False) -> list[dict]:
    """Every conversation of a JSONL file as ``{"messages": ..., **extra}``.

    A bad line is an error naming its line number, or with ``skip_bad`` is skipped (the
    count of skipped lines is in the returned list's ``skipped`` attribute).
    """
    path = Path(path)
    lines = read_text(path, "conversation file", give="a JSONL file").splitlines()
    out = Conversations()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse_line(line))
        except ConversationError as e:
            if not skip_bad:
                raise UserError(f"{path}, line {n}: {e}") from None
            out.skipped += 1
    return out


class Conversations(list):
    """A list of records that remembers how many bad lines were skipped."""
    skipped = 0


def to_line(record: dict, form: str = "messages") -> str:
    """One record as a JSONL line in ``form``: ``"messages"`` (an object, extras kept) or ``"list"``."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    obj = record if form == "messages" else record["messages"]
    return json.dumps(obj, ensure_ascii=False)


def write_conversations(path: str | Path, records: Iterable[dict], form: str = "messages") -> int:
    """Write records as JSONL (atomically); returns how many."""
    lines = [to_line(r, form) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


if __name__ == "__main__":
    from phases.common.console import run_command

    def main():
        if len(sys.argv) != 2:
            raise UserError("usage: python -m phases.phase8_sft.conversations FILE.jsonl")
        convs = read_conversations(sys.argv[1])
        tools = sum(any(isinstance(m["content"], list) for m in c["messages"]) for c in convs)
        print(f"{sys.argv[1]}: {len(convs)} valid conversations, {tools} with tool calls")

    sys.exit(run_command(main))
