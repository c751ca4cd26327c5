"""Server-sent events: how a streamed reply travels over plain HTTP.

A streamed completion is one long HTTP response (``Content-Type: text/event-stream``)
that the server keeps writing to. The format (WHATWG HTML, "server-sent events") is
lines of text; an *event* is one or more ``data: ...`` lines followed by a blank line.
OpenAI's streams put one JSON object in each event and end with a literal
``data: [DONE]``::

    data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [...]}

    data: [DONE]

Lines starting with ``:`` are comments (we send ``: ping`` to keep idle proxies from
closing the connection while a request waits in the queue).

``frame`` and ``DONE`` are what the server writes; ``events`` parses a byte stream
back into events, for the tests, the benchmark's load generator and any Python client.
The web page has the same parser in JavaScript (``static/app.js``), fed by a streaming
UTF-8 decoder, because a network chunk may end in the middle of a character.

What it leaves out: the ``event:``, ``id:`` and ``retry:`` fields (OpenAI uses none).

Run nothing here directly; ``server.py`` uses it.
"""
from __future__ import annotations

import json
from typing import Iterable, Iterator

DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"


# --8<-- [start:frame]
def frame(obj: dict) -> bytes:
    """One event: ``data: <json>`` and a blank line. JSON never contains a raw newline."""
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"
# --8<-- [end:frame]


def events(chunks: Iterable[bytes]) -> Iterator[str]:
    """Network chunks (split anywhere, even inside a UTF-8 character) -> each event's data.

    Yields the data of every event, ``"[DONE]"`` included; comments are skipped. Bytes
    are split into lines first and only whole lines are decoded, so a character cut in
    two by the network is never decoded half.
    """
    buffer = b""
    data: list[str] = []
    for chunk in chunks:
        buffer += chunk
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                break
            line, buffer = buffer[:cut].rstrip(b"\r").decode("utf-8"), buffer[cut + 1:]
            if line == "":                      # blank line: the event is complete
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith(":"):
                continue                        # a comment (keep-alive)
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)
