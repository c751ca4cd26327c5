"""One row of a generation: its sampling knobs, tokens, tool calls, streamed text and stops.

``engine.py`` runs the model for a batch of rows; everything that belongs to a single row
lives here, so the engine's loop reads as "choose, accept, decode":

- ``SamplingParams``: how the row samples (temperature, top-k, top-p, seed, stop strings,
  log-probabilities, tools);
- ``Generation``: the row's state. ``accept(token, ...)`` records a token, runs the
  calculator when a ``<|python_start|> … <|python_end|>`` block closes (its output is queued
  as forced tokens, mask 0), decodes text incrementally (``detok.py``), holds back text that
  could still become a stop string, and decides when the row is finished;
- ``TokenEvent`` (one row, one step), ``Step`` (all rows, one step) and ``Completion`` (a
  finished row): what the engine hands back.

What it leaves out: the model, the cache and sampling itself (``engine.py``, Phase 1's
``sampling.py``). Run it through the engine: ``python -m phases.phase6_inference.engine``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import torch

from phases.phase1_transformer.sampling import check_knobs
from phases.phase6_inference.calculator import calculate
from phases.phase6_inference.detok import StreamDecoder

_SEED_STRIDE = 0x9E3779B97F4A7C15  # golden-ratio stride: row seeds far apart


def row_seed(seed: int, sample_index: int) -> int:
    """The generator seed of sample ``sample_index`` of a prompt; sample 0 gets ``seed`` itself."""
    return (seed + sample_index * _SEED_STRIDE) % (1 << 64)


@dataclass(frozen=True)
class SamplingParams:
    """How one row generates. temperature 0 = greedy; top_k None/0 and top_p None/1 = off."""
    max_tokens: int = 256
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = 42          # None: a fresh random seed
    stop: tuple[str, ...] = ()     # stop strings (not included in the text)
    logprobs: bool = False
    use_tools: bool = True

    def __post_init__(self):
        check_knobs(self.temperature, self.top_k, self.top_p)
        if self.max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {self.max_tokens}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop strings must be non-empty strings")


@dataclass
class TokenEvent:
    """One row's token in one step."""
    token: int
    mask: int                      # 1 = sampled, 0 = forced
    logprob: float | None
    text: str                      # newly complete text
    finished: bool
    finish_reason: str | None      # "stop" or "length" once finished


@dataclass
class Step:
    """One step of ``Engine.generate``: a column per row of the request."""
    tokens: list[int | None]       # None: the row had finished before this step
    masks: list[int]
    logprobs: list[float | None] | None
    texts: list[str]
    finished: list[bool]
    finish_reasons: list[str | None]


@dataclass
class Completion:
    """A finished row of ``Engine.generate_batch``.

    ``tokens`` are the generated tokens, including a sampled terminal ``<|assistant_end|>`` /
    ``<|bos|>`` (mask 1: the model chose to stop); ``text`` leaves that terminal token and any
    stop string out.
    """
    tokens: list[int]
    masks: list[int]
    text: str
    finish_reason: str
    logprobs: list[float] | None
    prompt_index: int = 0
    sample_index: int = 0


class Generation:
    """The state of one row: its tokens, tool calls, streamed text, stop conditions.

    ``engine`` is the ``Engine`` running it (its device, tokenizer and special-token ids)."""

    def __init__(self, engine, prompt: Sequence[int], params: SamplingParams, sample_index: int = 0):
        self.prompt, self.params = list(prompt), params
        self.tokens: list[int] = []
        self.masks: list[int] = []
        self.logprobs: list[float] = []
        self.finished, self.finish_reason = False, None
        self.generator = torch.Generator(device=engine.device)
        if params.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(row_seed(params.seed, sample_index))
        self._engine = engine
        self._forced: deque[int] = deque()
        self._python: list[int] | None = None      # tokens of an open <|python_start|> block
        self._decoder = StreamDecoder(engine.tokenizer)
        self._text = ""                            # all text so far (terminal tokens excluded)
        self._emitted = 0                          # how much of it was streamed out

    @property
    def text(self) -> str:
        return self._text[:self._emitted] if self.finished else self._text

    def next_forced(self) -> int | None:
        return self._forced[0] if self._forced else None

    def force(self, tokens: Sequence[int]) -> None:
        """Queue tokens that the next steps take instead of sampling (mask 0), e.g. a branch's choice."""
        self._forced.extend(int(t) for t in tokens)

    def accept(self, token: int, mask: int, logprob: float | None, room: bool = True) -> TokenEvent:
        """Record ``token``; update tools, text and stop conditions; return the row's event.

        ``room`` False: the KV cache has no room to feed this token, so the row ends here.
        """
        e, p = self._engine, self.params
        if mask == 0:
            self._forced.popleft()
        self.tokens.append(token)
        self.masks.append(mask)
        if p.logprobs:
            self.logprobs.append(logprob)
        reason = None
        if mask == 1 and token in e.stop_ids:
            reason = "stop"
        else:
            if p.use_tools:
                self._tool(token)
            self._text += self._decoder.push(token)
        if reason is None and p.stop:
            cut = _find_stop(self._text, p.stop, self._emitted)
            if cut is not None:
                self._text, reason = self._text[:cut], "stop"
        if reason is None and (len(self.tokens) >= p.max_tokens or not room):
            reason = "length"
        if reason is not None and not (p.stop and reason == "stop" and token not in e.stop_ids):
            self._text += self._decoder.flush()     # a cut-off multi-byte character shows as U+FFFD
        if reason is not None:
            end = len(self._text)
            self.finished, self.finish_reason = True, reason
        else:
            end = len(self._text) - _held_back(self._text, p.stop)
        new, self._emitted = self._text[self._emitted:end], max(self._emitted, end)
        return TokenEvent(token, mask, logprob, new, self.finished, self.finish_reason)

    # --8<-- [start:tool]
    def _tool(self, token: int) -> None:
        e = self._engine
        if token == e.python_start:
            self._python = []
        elif token == e.python_end and self._python is not None:
            result = calculate(e.tokenizer.decode(self._python))
            self._python = None
            if result is not None:
                self._forced.extend([e.output_start, *e.tokenizer.encode(result), e.output_end])
        elif self._python is not None:
            self._python.append(token)
    # --8<-- [end:tool]

    def completion(self, prompt_index: int = 0, sample_index: int = 0) -> Completion:
        return Completion(list(self.tokens), list(self.masks), self.text, self.finish_reason or "length",
                          list(self.logprobs) if self.params.logprobs else None, prompt_index, sample_index)


def _find_stop(text: str, stops: Sequence[str], emitted: int) -> int | None:
    """Index where the earliest stop string starts in ``text`` (searching only what may be new)."""
    best = None
    for s in stops:
        i = text.find(s, max(0, emitted - len(s) + 1))
        if i >= 0 and (best is None or i < best):
            best = i
    return best


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could still grow into a stop string."""
    held = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), held, -1):
            if text.endswith(s[:n]):
                held = n
                break
    return held
