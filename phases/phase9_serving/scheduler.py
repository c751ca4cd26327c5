"""Continuous batching: many requests share each decode step.

Decoding one token reads every weight of the model once, whether it decodes one row or
thirty-two. On memory-bound hardware (every CPU, and GPUs at small batch) a step of 16
rows costs little more than a step of one, so serving requests *together* multiplies
throughput. The scheduler owns the model, in one thread, and loops:

1. **admit**: while batch rows are free, take the next waiting request, find the row
   whose cached tokens share the longest prefix with its prompt (the same system prompt,
   an earlier turn of the same chat), copy that prefix (``KVCache.copy_prefix``) and
   prefill only the rest (``Engine.prefill``); a request with ``n`` choices takes ``n``
   rows and prefills once;
2. **choose**: sample (or force) the next token of every running row in one call
   (``Engine.choose``: per-row temperature, top-k, top-p and seeded generators, tools,
   stop strings), and hand each event to its request;
3. **decode**: one forward pass for all rows still running, each at its own position
   (``Engine.decode``); finished and cancelled rows leave the batch, and new requests
   join it at the next admit, between two steps.

A finished row is *parked*, not cleared: its tokens stay in the cache until the row is
given to someone else, so the next turn of a conversation finds its prefix there.
``max_batch=1`` turns batching off (one request at a time): the benchmark's baseline.

The HTTP side lives in an asyncio event loop; ``Job.emit`` is called from this thread
and must hand events over thread-safely (the server uses ``call_soon_threadsafe``).

What it leaves out: paged KV blocks (vLLM's PagedAttention allocates memory per 16
tokens; we reserve ``max_len`` per row), a radix tree over prefixes (SGLang; we compare
against the ``max_batch`` rows only), chunked prefill, preemption, priorities.

Run nothing here directly; ``server.py`` builds one.
"""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import torch

from phases.phase6_inference.engine import Engine, SamplingParams, TokenEvent


class QueueFull(Exception):
    """The wait queue is full: the server answers 429 with Retry-After."""


@dataclass(eq=False)          # jobs are compared by identity (they go in sets)
class Job:
    """One request: ``n`` choices of one prompt.

    ``emit(index, event)`` receives each token event of choice ``index``; ``emit(None, exc)``
    an error that ends the job (timeout, a failure in the model).
    """
    prompt: list[int]
    params: SamplingParams
    emit: Callable
    n: int = 1
    deadline: float = float("inf")
    arrived: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    reused: int = 0                    # prompt tokens found in the cache
    first_token_at: float | None = None
    finished_rows: int = 0
    _last: dict = field(default_factory=dict)


class Timeout(Exception):
    pass


class Scheduler:
    """Runs jobs on ``engine`` in one background thread, ``max_batch`` rows at a time."""

    def __init__(self, engine: Engine, max_batch: int = 16, max_queue: int = 64, max_len: int | None = None,
                 metrics=None, prefix_reuse: bool = True):
        self.engine, self.max_batch, self.max_queue = engine, max_batch, max_queue
        self.cache = engine.new_cache(max_batch, max_len)
        self.max_len = self.cache.max_len
        self.metrics, self.prefix_reuse = metrics, prefix_reuse
        self._queue: collections.deque[Job] = collections.deque()
        self._calls: collections.deque[tuple[Callable, Future]] = collections.deque()
        self._cond = threading.Condition()
        self._tokens: list[list[int]] = [[] for _ in range(max_batch)]   # what each row's cache holds
        self._job: dict[int, Job] = {}                                    # running row -> its job
        self._index: dict[int, int] = {}                                  # running row -> choice index
        self._gen: dict = {}                                              # running row -> Generation
        self._logits: dict[int, torch.Tensor] = {}                        # running row -> next logits (V,)
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)

    # -- the event-loop side -------------------------------------------------------------------
    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        """Queue ``job``; raise ``QueueFull`` when ``max_queue`` jobs already wait."""
        if job.n > self.max_batch:
            raise ValueError(f"{job.n} choices need more rows than the batch has ({self.max_batch})")
        with self._cond:
            if len(self._queue) >= self.max_queue:
                raise QueueFull()
            self._queue.append(job)
            self._gauge()
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        """Stop ``job`` (its client left): it leaves the queue or the batch before the next step."""
        job.cancelled = True
        with self._cond:
            self._cond.notify()

    def call(self, fn: Callable) -> Future:
        """Run ``fn()`` in the scheduler thread between two steps (the model has one user)."""
        future: Future = Future()
        with self._cond:
            self._calls.append((fn, future))
            self._cond.notify()
        return future

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return len(self._job)

    # -- the scheduler thread --------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._queue or self._calls or self._job):
                    self._cond.wait()
                if self._stopping:
                    break
            try:
                self._run_calls()
                self._drop_finished_jobs()
                self._admit()
                if self._job:
                    self._step()
            except Exception as e:  # a bug or a model failure: end every job with the error
                for job in set(self._job.values()) | set(self._queue):
                    job.emit(None, e)
                self._queue.clear()
                for row in list(self._job):
                    self._park(row)
        for job in set(self._job.values()) | set(self._queue):
            job.emit(None, RuntimeError("the server is shutting down"))

    def _run_calls(self) -> None:
        while self._calls:
            fn, future = self._calls.popleft()
            try:
                future.set_result(fn())
            except Exception as e:
                future.set_exception(e)

    def _drop_finished_jobs(self) -> None:
        """Cancelled or timed-out jobs leave the queue and the batch."""
        now = time.perf_counter()
        with self._cond:
            for job in [j for j in self._queue if j.cancelled or now > j.deadline]:
                self._queue.remove(job)
                if not job.cancelled:
                    job.emit(None, Timeout())
        expired = {id(j): j for j in self._job.values() if j.cancelled or now > j.deadline}
        for row in [r for r, j in self._job.items() if id(j) in expired]:
            self._park(row)
        for job in expired.values():
            if not job.cancelled:
                job.emit(None, Timeout())
        self._gauge()

    # --8<-- [start:admit]
    def _admit(self) -> None:
        """Give free rows to waiting jobs, reusing the longest cached prefix of each prompt."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                free = [r for r in range(self.max_batch) if r not in self._job]
                job = self._queue[0]
                if len(free) < job.n:
                    return                          # it waits for rows to finish (first come, first served)
                self._queue.popleft()
            rows = free[:job.n]                     # the lowest free rows: the batch stays a slice
            first = rows[0]
            src, k = self._best_prefix(job.prompt) if self.prefix_reuse else (first, 0)
            try:
                if src == first:
                    self.cache.truncate(first, k)   # the row already holds the prefix
                else:
                    self.cache.truncate(first, 0)
                    self.cache.copy_prefix(src, first, k)
                logits = self.engine.prefill(self.cache, first, job.prompt[k:])     # (V,)
                if job.n > 1:
                    self.cache.copy_prefix(first, rows[1:])
            except Exception as e:                  # e.g. a prompt the model cannot take
                for row in rows:
                    self.cache.truncate(row, 0)
                    self._tokens[row] = []
                job.emit(None, e)
                continue
            job.reused = k
            for i, row in enumerate(rows):
                self._tokens[row] = list(job.prompt)
                self._job[row], self._index[row], self._logits[row] = job, i, logits
                self._gen[row] = self.engine.start(job.prompt, job.params, sample_index=i)
            if self.metrics:
                self.metrics.prompt_tokens.inc(len(job.prompt))
                self.metrics.reused_tokens.inc(k)
            self._gauge()
    # --8<-- [end:admit]

    def _best_prefix(self, prompt: list[int]) -> tuple[int, int]:
        """(row, length): the cached row sharing the longest prefix with ``prompt``.

        At most ``len(prompt) - 1`` tokens are reused: the last prompt token must run
        through the model to give the logits of the first new token.
        """
        free = [r for r in range(self.max_batch) if r not in self._job]
        best_row, best = free[0], 0
        limit = len(prompt) - 1
        for row, cached in enumerate(self._tokens):
            n = _common_prefix(cached, prompt, limit)
            if n > best or (n == best and row == free[0]):
                best_row, best = row, n
        return best_row, best

    # --8<-- [start:step]
    def _step(self) -> None:
        """Choose a token for every running row, hand out the events, decode the survivors."""
        rows = sorted(self._job)
        logits = torch.stack([self._logits[r] for r in rows])                  # (B, V)
        room = [int(self.cache.pos[r]) < self.max_len for r in rows]
        events = self.engine.choose([self._gen[r] for r in rows], logits, room)
        now = time.perf_counter()
        going, fed = [], []
        for row, ev in zip(rows, events):
            self._deliver(row, ev, now)
            if ev.finished:
                self._park(row)
            else:
                going.append(row)
                fed.append(ev.token)
        if going:
            out = self.engine.decode(self.cache, going, fed)                    # (B', V)
            for i, (row, tok) in enumerate(zip(going, fed)):
                self._logits[row] = out[i]
                self._tokens[row].append(tok)
        if self.metrics:
            self.metrics.batch_size.observe(len(rows))
            self.metrics.generation_tokens.inc(len(rows))
    # --8<-- [end:step]

    def _deliver(self, row: int, ev: TokenEvent, now: float) -> None:
        job, index = self._job[row], self._index[row]
        if job.first_token_at is None:
            job.first_token_at = now
            if self.metrics:
                self.metrics.ttft.observe(now - job.arrived)
        elif self.metrics and index in job._last:
            self.metrics.tpot.observe(now - job._last[index])
        job._last[index] = now
        job.emit(index, ev)

    def _park(self, row: int) -> None:
        """The row leaves the batch; its cached tokens stay for prefix reuse."""
        job = self._job.pop(row)
        job.finished_rows += 1
        self._tokens[row] = self._tokens[row][:int(self.cache.pos[row])]
        for d in (self._index, self._gen, self._logits):
            d.pop(row, None)

    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(len(self._queue))
            self.metrics.running.set(len({id(j) for j in self._job.values()}))


def _common_prefix(a: list[int], b: list[int], limit: int) -> int:
    """Length of the common prefix of ``a`` and ``b`` (at most ``limit``), by binary search on slices."""
    lo, hi = 0, min(len(a), len(b), limit)
    if a[:hi] == b[:hi]:
        return hi
    hi -= 1
    while lo < hi:                 # invariant: a[:lo] == b[:lo], a[:hi+1] != b[:hi+1]
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
