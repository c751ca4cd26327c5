"""A multi-turn chat that keeps its KV cache between turns.

nanochat's CLI renders and prefills the *whole* conversation at every turn, so the wait
before the first token (TTFT) grows with the conversation. A ``Session`` keeps the cache
of everything said so far in one cache row and prefills only the new turn:

    session = Session(engine, system="Be brief.")
    reply = session.send("What is 2+2?")     # prefills the new turn only
    for event in reply:                       # streams TokenEvents (event.text: new text)
        print(event.text, end="")
    reply.text, reply.prefilled, reply.reused, reply.dropped_turns

The token stream is exactly Phase 0's chat format (``render_conversation``), with the
replies as the tokens the model actually sampled (and tool calls/outputs as they happened):

    <|bos|> <|user_start|> … <|user_end|> <|assistant_start|> reply … <|assistant_end|> <|user_start|> …

The last token of a reply is never fed to the cache during generation (nothing needed its
keys yet); the next turn's prefill starts with it, then ``<|assistant_end|>`` and the new
user turn. When the conversation plus the reply budget (``max_tokens``) would outgrow the
cache, the oldest exchanges are dropped (the system prompt stays), the rest is re-prefilled,
and ``reply.dropped_turns`` says how many went. ``undo`` removes the last exchange,
``regenerate`` answers the last message again, ``edit(i, text)`` replaces user message i and
forgets what came after; all three roll the cache back (``KVCache.truncate``) instead of
recomputing it. Each reply gets its own seed (``seed`` + the number of replies so far, unless
the call passes ``seed=``), so a regenerated answer differs but a replayed session is identical.

What it leaves out: several sessions sharing one cache (Phase 9's server), summarising the
dropped turns, persistence to disk.

Run: see ``mini-nanochat generate --help`` and Phase 9's chat for the interactive use.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterator

from phases.phase0_tokenizer.chat import render_conversation
from phases.phase6_inference.engine import Engine, SamplingParams, TokenEvent


@dataclass
class Exchange:
    """One user message and the reply to it, as tokens."""
    user: str
    start: int                  # index in ``Session.tokens`` where this exchange's tokens begin
    reply_start: int            # index where the reply begins (just after <|assistant_start|>)
    reply: list[int] = field(default_factory=list)   # the reply's tokens (no terminal token)
    text: str = ""


class Reply:
    """The answer to one turn, streamed by iterating; filled in as it streams."""

    def __init__(self, session: "Session", params: SamplingParams, dropped: int, prefilled: int,
                 reused: int, logits, prefill_s: float):
        self.session, self.params = session, params
        self.dropped_turns, self.prefilled, self.reused = dropped, prefilled, reused
        self.prefill_s = prefill_s           # seconds spent prefilling the new turn
        self.finish_reason: str | None = None
        self._logits = logits
        self._gen = session.engine.start(session.tokens, params)
        self._done = False

    @property
    def text(self) -> str:
        return self._gen.text

    @property
    def tokens(self) -> list[int]:
        return list(self._gen.tokens)

    def __iter__(self) -> Iterator[TokenEvent]:
        s, e = self.session, self.session.engine
        while not self._done:
            room = int(s.cache.pos[0]) < s.cache.max_len
            ev = e.choose([self._gen], self._logits[None], [room])[0]
            s._record(ev)
            yield ev
            if ev.finished:
                self._done, self.finish_reason = True, ev.finish_reason
                break
            self._logits = e.decode(s.cache, [0], [ev.token])[0]

    def read(self) -> str:
        """Generate to the end and return the text."""
        for _ in self:
            pass
        return self.text


class Session:
    """A conversation over one KV-cache row (see the module docstring)."""

    def __init__(self, engine: Engine, *, system: str | None = None, max_len: int | None = None,
                 params: SamplingParams | None = None):
        self.engine, self.system = engine, system
        self.params = params or SamplingParams(max_tokens=256, temperature=0.6, top_k=50)
        self.cache = engine.new_cache(1, max_len)
        tok = engine.tokenizer
        self._bos, self._end = tok.bos_token_id, tok.encode_special("<|assistant_end|>")
        self._start = tok.encode_special("<|assistant_start|>")
        self.tokens: list[int] = [self._bos]     # the conversation; the cache holds a prefix of it
        self.exchanges: list[Exchange] = []
        self.replies = 0                         # replies generated so far (seeds the next one)
        self._live: Reply | None = None

    # -- the conversation ------------------------------------------------------------------------
    @property
    def messages(self) -> list[dict]:
        """The conversation in Phase 0's format (system first, if any)."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        for x in self.exchanges:
            out.append({"role": "user", "content": x.user})
            if x.reply or x.text:
                out.append({"role": "assistant", "content": x.text})
        return out

    @property
    def cached(self) -> int:
        """How many of ``tokens`` the cache holds."""
        return int(self.cache.pos[0])

    def send(self, text: str, **params) -> Reply:
        """Add a user message, prefill what the cache lacks, and return the streaming reply."""
        self._finish_live()
        if not isinstance(text, str):
            raise TypeError(f"a message is a str, got {type(text).__name__}")
        self._begin_exchange(text)
        return self._answer(params)

    def regenerate(self, **params) -> Reply:
        """Answer the last user message again (a new seed; the cache rolls back, nothing is recomputed)."""
        self._finish_live()
        if not self.exchanges:
            raise ValueError("nothing to regenerate: no message yet")
        last = self.exchanges[-1]
        self._rollback(last.reply_start)
        last.reply, last.text = [], ""
        return self._answer(params)

    def undo(self) -> None:
        """Remove the last exchange (message and reply)."""
        self._finish_live()
        if not self.exchanges:
            raise ValueError("nothing to undo")
        self._rollback(self.exchanges.pop().start)

    def edit(self, index: int, text: str, **params) -> Reply:
        """Replace user message ``index`` (0 = first), forget everything after it, answer it."""
        self._finish_live()
        if not 0 <= index < len(self.exchanges):
            raise IndexError(f"no user message {index} (the session has {len(self.exchanges)})")
        self._rollback(self.exchanges[index].start)
        del self.exchanges[index:]
        return self.send(text, **params)

    def load(self, messages: list[dict]) -> None:
        """Start from an existing conversation (system?, user, assistant, ..., user or assistant)."""
        self._finish_live()
        msgs = list(messages)
        self.system = msgs.pop(0)["content"] if msgs and msgs[0].get("role") == "system" else None
        render_conversation(self.engine.tokenizer, ([{"role": "system", "content": self.system}]
                                                    if self.system else []) + msgs)  # validates
        self.tokens, self.exchanges = [self._bos], []
        self.cache.reset()
        for m in msgs:
            if m["role"] == "user":
                self._begin_exchange(m["content"])
            else:
                x = self.exchanges[-1]
                x.reply = self._assistant_tokens(m["content"])
                x.text = m["content"] if isinstance(m["content"], str) else self.engine.tokenizer.decode(x.reply)
                self.tokens += x.reply

    # -- internals -----------------------------------------------------------------------------
    def _user_chunk(self, text: str, first: bool) -> list[int]:
        """<|user_start|> text <|user_end|> <|assistant_start|>, rendered by Phase 0 (system merged in first)."""
        msgs = ([{"role": "system", "content": self.system}] if first and self.system else [])
        ids, _ = render_conversation(self.engine.tokenizer, msgs + [{"role": "user", "content": text}],
                                     max_tokens=1 << 62)
        return ids[1:] + [self._start]                   # without <|bos|>

    def _assistant_tokens(self, content) -> list[int]:
        """The tokens of an assistant message (text or parts), without its <|assistant_end|>."""
        ids, _ = render_conversation(self.engine.tokenizer, [{"role": "user", "content": ""},
                                                             {"role": "assistant", "content": content}],
                                     max_tokens=1 << 62)
        return ids[ids.index(self._start) + 1:-1]

    def _begin_exchange(self, text: str, reply: list[int] | None = None, reply_text: str = "") -> Exchange:
        """Append [<|assistant_end|> closing the previous reply] + the user chunk (+ a known reply)."""
        start = len(self.tokens)
        if self.exchanges:
            self.tokens.append(self._end)                # the previous reply ends here
        self.tokens += self._user_chunk(text, not self.exchanges)
        x = Exchange(text, start, len(self.tokens), list(reply or []), reply_text)
        self.exchanges.append(x)
        self.tokens += x.reply
        return x

    def _rollback(self, length: int) -> None:
        del self.tokens[length:]
        if self.cached > length:
            self.cache.truncate(0, length)

    def _finish_live(self) -> None:
        """A reply not streamed to its end stays as far as it got."""
        if self._live is not None:
            self._live._done = True
            self._live = None

    def _record(self, ev: TokenEvent) -> None:
        x = self.exchanges[-1]
        if not (ev.finished and ev.finish_reason == "stop" and ev.mask == 1 and ev.token in self.engine.stop_ids):
            x.reply.append(ev.token)
            self.tokens.append(ev.token)
        x.text = self._live.text if self._live is not None else x.text

    def _answer(self, overrides: dict) -> Reply:
        params = replace(self.params, **overrides) if overrides else self.params
        if "seed" not in overrides and params.seed is not None:   # each reply its own seed
            params = replace(params, seed=params.seed + self.replies)
        self.replies += 1
        dropped = self._fit(params.max_tokens)
        budget = self.cache.max_len - len(self.tokens)
        if budget < 1:
            raise ValueError(f"the message alone ({len(self.tokens)} tokens) fills the context "
                             f"({self.cache.max_len} tokens)")
        params = replace(params, max_tokens=min(params.max_tokens, budget))
        if self.cached >= len(self.tokens):              # nothing new to feed: re-feed the last token
            self.cache.truncate(0, len(self.tokens) - 1)
        reused = self.cached
        t0 = time.perf_counter()
        logits = self.engine.prefill(self.cache, 0, self.tokens[reused:])
        prefill_s = time.perf_counter() - t0
        self._live = Reply(self, params, dropped, len(self.tokens) - reused, reused, logits, prefill_s)
        return self._live

    def _fit(self, max_tokens: int) -> int:
        """Drop the oldest exchanges until the conversation plus the reply budget fits; how many went."""
        dropped = 0
        while len(self.tokens) + max_tokens > self.cache.max_len and len(self.exchanges) > 1:
            self.exchanges.pop(0)
            dropped += 1
            self._rerender()
        return dropped

    def _rerender(self) -> None:
        """Rebuild ``tokens`` from the kept exchanges (system prompt merged into the first) and reset the cache."""
        kept, self.exchanges, self.tokens = self.exchanges, [], [self._bos]
        for x in kept:
            self._begin_exchange(x.user, x.reply, x.text)
        self.cache.reset()
