"""One request's generation, as the HTTP side sees it: submit, then await pieces of text.

``Run`` submits one scheduler ``Job`` per prompt (``n`` choices each) and turns the
token events that come back from the scheduler thread into ``Piece``s: the new text of
one choice (calculator calls already in ``<<expr=result>>`` notation, ``toolcalls.py``)
and, at its end, its finish reason. It also keeps what the response needs at the end:
each choice's tokens (for logprobs), the usage counts, the TTFT.

It owns the three ways a request can end early:

- the **client disconnects**: a streamed response is cancelled by the server framework,
  which closes the generator (``finally`` cancels the jobs); a request waiting for a
  whole answer checks ``request.is_disconnected()`` between events;
- the **timeout** passes: the scheduler ends the job and ``pieces`` raises a 504;
- the **queue is full**: ``start`` raises the 429.

What it leaves out: resuming a stream after a reconnect.

Run nothing here directly; ``chat_api.py`` and ``completions.py`` use it.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import AsyncIterator

from starlette.responses import Response

from phases.phase6_inference.engine import SamplingParams
from phases.phase9_serving import protocol as P
from phases.phase9_serving.scheduler import Job, QueueFull, Timeout
from phases.phase9_serving.toolcalls import ToolText, as_text


@dataclass
class Piece:
    choice: int                    # prompt_index * n + sample_index
    text: str
    finish_reason: str | None


class Disconnected(Exception):
    pass


class Run:
    """The choices of one request (``len(prompts) * n`` of them) as they are generated."""

    def __init__(self, server, request, prompts: list[list[int]], params: SamplingParams, n: int = 1):
        self.server, self.request, self.n = server, request, n
        self.prompts, self.params = prompts, params
        self.choices = len(prompts) * n
        self.texts = [""] * self.choices
        self.tokens: list[list[int]] = [[] for _ in range(self.choices)]   # generated, stop token included
        self.finish: list[str | None] = [None] * self.choices
        self.completion_tokens = 0
        self.arrived = time.perf_counter()
        self.first_token: float | None = None
        self._tool = [ToolText() for _ in range(self.choices)]
        self._open = self.choices
        self._queue: asyncio.Queue = asyncio.Queue()
        self.jobs: list[Job] = []

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p) for p in self.prompts)

    def start(self) -> "Run":
        """Submit the jobs (all or none): raises the 429 ``APIError`` when the queue is full."""
        loop = asyncio.get_running_loop()
        deadline = self.arrived + self.server.settings.request_timeout
        for no, prompt in enumerate(self.prompts):
            def emit(index, event, no=no):
                loop.call_soon_threadsafe(self._queue.put_nowait, (no, index, event))
            self.jobs.append(Job(prompt, self.params, emit, n=self.n, deadline=deadline, arrived=self.arrived))
        try:
            for job in self.jobs:
                self.server.scheduler.submit(job)
        except QueueFull:
            self.cancel()
            raise self.server.retry_after() from None
        return self

    def cancel(self) -> None:
        for job in self.jobs:
            self.server.scheduler.cancel(job)

    # --8<-- [start:pieces]
    async def pieces(self, ping_every: float | None = None) -> AsyncIterator[Piece | None]:
        """Each new piece of text as it comes; ``None`` every ``ping_every`` idle seconds (keep-alive)."""
        checked = time.perf_counter()
        try:
            while self._open:
                if not ping_every and time.perf_counter() - checked > 0.25:
                    checked = time.perf_counter()
                    if await self.request.is_disconnected():    # nobody waits for the answer any more
                        raise Disconnected()
                try:
                    no, index, ev = await asyncio.wait_for(self._queue.get(), ping_every or 0.25)
                except asyncio.TimeoutError:
                    if ping_every:
                        yield None
                    continue
                batch = [(no, index, ev)]
                while not self._queue.empty():          # behind? take every waiting event: one chunk each
                    batch.append(self._queue.get_nowait())
                for piece in self._merge(batch):
                    yield piece
        finally:
            if self._open:
                self.cancel()
    # --8<-- [end:pieces]

    def _merge(self, batch: list) -> list[Piece]:
        """Token events -> at most one piece per choice (its new text, and its end if it ended)."""
        out: dict[int, Piece] = {}
        for no, index, ev in batch:
            if index is None:
                raise _as_api_error(ev)
            c = no * self.n + index
            if self.first_token is None:
                self.first_token = time.perf_counter()
            self.completion_tokens += 1
            self.tokens[c].append(ev.token)            # a terminal <|bos|> too: logprobs list every token
            text = as_text(self._tool[c].push(ev.text))
            if ev.finished:
                text += as_text(self._tool[c].flush())
                self.finish[c] = ev.finish_reason
                self._open -= 1
            self.texts[c] += text
            piece = out.setdefault(c, Piece(c, "", None))
            piece.text += text
            piece.finish_reason = ev.finish_reason if ev.finished else None
        return list(out.values())

    async def collect(self) -> Response | None:
        """Wait for every choice to finish; if the client left meanwhile, the (unread) 499 response."""
        try:
            async for _ in self.pieces():
                pass
        except Disconnected:
            return Response(status_code=499)     # nginx's "client closed request": only the log sees it
        return None

    def log_fields(self, **extra) -> dict:
        ttft = None if self.first_token is None else round((self.first_token - self.arrived) * 1000, 1)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "reused_tokens": sum(j.reused for j in self.jobs), "ttft_ms": ttft,
                "finish": [f or "cancelled" for f in self.finish], **extra}

    def usage(self) -> dict:
        return P.usage(self.prompt_tokens, self.completion_tokens)


def _as_api_error(e: BaseException) -> P.APIError:
    if isinstance(e, Timeout):
        return P.APIError(504, "the request took longer than the server's request timeout", type="timeout",
                          code="timeout")
    return P.APIError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error")


def sampling_params(server, r, max_tokens: int) -> SamplingParams:
    """A request's knobs, with the server's defaults where it is silent."""
    s = server.settings
    return SamplingParams(max_tokens=max_tokens,
                          temperature=s.temperature if r.temperature is None else r.temperature,
                          top_k=s.top_k if r.top_k is None else (r.top_k or None),
                          top_p=s.top_p if r.top_p is None else r.top_p,
                          seed=r.seed, stop=tuple(r.stops()))
