"""Calculator calls as text: ``<<expression=result>>``, the notation GSM8K taught the model.

Inside the model a calculator call is special tokens::

    <|python_start|> 48/2 <|python_end|> <|output_start|> 24 <|output_end|>

(the engine runs the calculator and forces the output part). A client of an
OpenAI-compatible API only ever sees text, so the server writes each call as
``<<48/2=24>>`` (``<<48/2>>`` when the calculator gave no result): GSM8K's own
annotation, readable in any chat client, shown as its own element by our web page and
terminal, and *reversible*: when a client sends the conversation back, ``to_parts``
turns the notation into the python / python_output parts of Phase 0's chat format, so
the model reads its earlier calls as the tokens it wrote.

``ToolText`` does the forward direction on a stream: the engine's text arrives in
pieces (special tokens appear as their names), and a call is held back until its
output is complete, then emitted as one segment.

What it leaves out: other tools (code execution, search); a model writing ``<<`` on its
own is shown as it is.

Run: ``python -m phases.phase9_serving.toolcalls`` shows a stream being converted.
"""
from __future__ import annotations

import re

PY_START, PY_END = "<|python_start|>", "<|python_end|>"
OUT_START, OUT_END = "<|output_start|>", "<|output_end|>"
_MARKERS = (PY_START, PY_END, OUT_START, OUT_END)
_CALL = re.compile(r"<<([^<>]*?)>>")


def markup(expression: str, result: str | None) -> str:
    """The text form of one call."""
    return f"<<{expression}={result}>>" if result is not None else f"<<{expression}>>"


class ToolText:
    """Engine text in (special tokens as names), segments out: ("text", s) or ("calc", expr, result)."""

    def __init__(self):
        self.buffer = ""

    def push(self, text: str) -> list[tuple]:
        self.buffer += text
        out: list[tuple] = []
        while self.buffer:
            start = self.buffer.find(PY_START)
            if start < 0:                                   # no call: emit all but a possible marker start
                keep = _partial_marker(self.buffer)
                if len(self.buffer) > keep:
                    out.append(("text", self.buffer[:len(self.buffer) - keep]))
                    self.buffer = self.buffer[len(self.buffer) - keep:]
                break
            if start > 0:
                out.append(("text", self.buffer[:start]))
                self.buffer = self.buffer[start:]
            call = self._complete_call()
            if call is None:
                break                                       # wait for the rest of the call
            out.append(call)
        return out

    def _complete_call(self) -> tuple | None:
        """A call at the start of the buffer, if complete (consumed from the buffer)."""
        b = self.buffer
        end = b.find(PY_END)
        if end < 0:
            return None
        expr = b[len(PY_START):end]
        rest = b[end + len(PY_END):]
        if not rest or (len(rest) < len(OUT_START) and OUT_START.startswith(rest)):
            return None                                     # the output may still come
        if rest.startswith(OUT_START):
            close = rest.find(OUT_END)
            if close < 0:
                return None
            self.buffer = rest[close + len(OUT_END):]
            return ("calc", expr, rest[len(OUT_START):close])
        self.buffer = rest                                  # the calculator gave no result
        return ("calc", expr, None)

    def flush(self) -> list[tuple]:
        """The end of the stream: an unfinished call is shown as it stands."""
        b, self.buffer = self.buffer, ""
        if b.startswith(PY_START):
            body = b[len(PY_START):]
            for m in _MARKERS:
                body = body.replace(m, "")
            return [("calc", body, None)]
        return [("text", b)] if b else []


def _partial_marker(text: str) -> int:
    """How many trailing characters could be the beginning of ``<|python_start|>``."""
    for n in range(min(len(PY_START) - 1, len(text)), 0, -1):
        if PY_START.startswith(text[-n:]):
            return n
    return 0


def as_text(segments: list[tuple]) -> str:
    """Segments -> the API's text (calls in ``<<expr=result>>`` notation)."""
    return "".join(s[1] if s[0] == "text" else markup(s[1], s[2]) for s in segments)


# --8<-- [start:to_parts]
def to_parts(text: str) -> str | list[dict]:
    """An assistant message's text -> Phase 0's content: the string itself, or parts around calls."""
    if "<<" not in text:
        return text
    parts: list[dict] = []
    pos = 0
    for m in _CALL.finditer(text):
        if m.start() > pos:
            parts.append({"type": "text", "text": text[pos:m.start()]})
        expr, sep, result = m.group(1).rpartition("=")
        if not sep:                                         # <<expr>>: a call without a result
            expr, result = m.group(1), None
        parts.append({"type": "python", "text": expr})
        if result is not None:
            parts.append({"type": "python_output", "text": result})
        pos = m.end()
    if pos < len(text):
        parts.append({"type": "text", "text": text[pos:]})
    return parts
# --8<-- [end:to_parts]


if __name__ == "__main__":
    stream = ["Half of 48 is ", "<|python_start|>", "48/", "2", "<|python_end|>", "<|output_start|>",
              "24", "<|output_end|>", "24."]
    t = ToolText()
    for piece in stream:
        print(f"{piece!r:22} -> {t.push(piece)}")
    print("flush ->", t.flush())
    print(to_parts("Half of 48 is <<48/2=24>>24."))
