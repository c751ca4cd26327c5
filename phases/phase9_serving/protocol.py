"""The OpenAI wire format: request schemas, their limits, error shapes and response bodies.

"OpenAI-compatible" is a contract about JSON, not about models: a client that speaks to
``api.openai.com`` must be able to speak to us by changing only its base URL. So this
file fixes, field by field, what we accept and what we answer:

- **requests** (``ChatCompletionRequest``, ``CompletionRequest``): pydantic models in
  strict mode (``"0.5"`` is not a temperature), unknown fields ignored (clients send
  fields we do not know, e.g. ``user``), and ``top_k`` accepted as an extra field (the
  OpenAI SDK sends it through ``extra_body``);
- **limits** (``Limits``): how many messages, characters, tokens and choices a request
  may ask for, so one request cannot take the server down (nanochat's deleted server
  had the same numbers for messages and characters);
- **errors** (``APIError``): ``{"error": {"message", "type", "param", "code"}}`` with the
  HTTP status OpenAI uses: 400 for a bad request, 401 for a bad key, 404 for an unknown
  model or route, 413 for a body too large, 429 when the queue is full;
- **responses** (``chat_response``, ``chat_chunk``, ``completion_response``, ...):
  ``chat.completion`` / ``chat.completion.chunk`` / ``text_completion`` objects with
  ``usage`` counts.

What it leaves out: tools/function calling, images and audio, ``logit_bias``, penalties
(requests that ask for them get a 400 that says so, never a silent ignore).

Run nothing here directly; ``server.py`` uses it.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class APIError(Exception):
    """An error answered in OpenAI's shape, with its HTTP status."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# --8<-- [start:limits]
@dataclass(frozen=True)
class Limits:
    """What one request may ask for; the server answers 400 (or 413/429) beyond these."""
    max_messages: int = 500            # nanochat's deleted server: 1..500 messages,
    max_message_chars: int = 8000      # 8,000 characters per message,
    max_total_chars: int = 32000       # 32,000 in all
    max_tokens: int = 4096             # per choice; the context window may allow fewer
    max_n: int = 8                     # choices per request (each takes a batch row)
    max_prompts: int = 32              # prompts in one /v1/completions request
    max_stop: int = 4                  # stop strings, as OpenAI
    max_stop_chars: int = 256
    max_top_logprobs: int = 5          # /v1/completions "logprobs", as OpenAI
    max_body_bytes: int = 1 << 20      # 1 MiB of JSON
# --8<-- [end:limits]


# -- request schemas ---------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]
    name: Optional[str] = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    """Fields shared by both endpoints (OpenAI's names and ranges)."""
    model: Optional[str] = None
    max_tokens: Optional[int] = Field(None, ge=0)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    top_k: Optional[int] = Field(None, ge=0)          # extra field (vLLM's name); 0 = off
    n: int = Field(1, ge=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = Field(None, ge=-(2 ** 63), lt=2 ** 63)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    presence_penalty: Optional[float] = Field(None, ge=-2, le=2)
    frequency_penalty: Optional[float] = Field(None, ge=-2, le=2)
    logit_bias: Optional[dict[str, float]] = None
    user: Optional[str] = None

    def stops(self) -> list[str]:
        return [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage]
    max_completion_tokens: Optional[int] = Field(None, ge=0)   # OpenAI's newer name for max_tokens
    logprobs: Optional[bool] = None
    tools: Optional[list[Any]] = None
    response_format: Optional[dict[str, Any]] = None


Prompt = Union[str, list[str], list[int], list[list[int]]]


class CompletionRequest(_Sampling):
    prompt: Prompt
    echo: bool = False
    logprobs: Optional[int] = Field(None, ge=0)
    suffix: Optional[str] = None
    best_of: Optional[int] = Field(None, ge=1)


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _param(loc: tuple) -> str:
    """pydantic's error location without the union-member tags it inserts (``stop.str`` -> ``stop``)."""
    keep = [str(p) for p in loc if not (isinstance(p, str) and (p.lower() in _TYPE_TAGS or "[" in p or p[:1].isupper()
                                                                or p.startswith("function-")))]
    return ".".join(keep)


def parse(model: type[BaseModel], raw: bytes, limits: Limits) -> Any:
    """Raw request bytes -> a validated request, or an ``APIError`` naming the bad field."""
    if len(raw) > limits.max_body_bytes:
        raise APIError(413, f"request body is {len(raw):,} bytes; the limit is {limits.max_body_bytes:,}",
                       code="request_too_large")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(data).__name__}")
    try:
        request = model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        param = _param(first["loc"])
        raise APIError(400, f"{param or 'body'}: {first['msg']} ({len(e.errors())} problem(s) in all)",
                       param=param or None) from None
    check_limits(request, limits)
    return request


def _unsupported(param: str, what: str) -> APIError:
    return APIError(400, f"{param}: {what} is not supported by this server", param=param, code="unsupported")


# --8<-- [start:check_limits]
def check_limits(r: _Sampling, limits: Limits) -> None:
    """The checks a schema cannot express: limits, and features we honestly do not have."""
    if r.n > limits.max_n:
        raise APIError(400, f"n: at most {limits.max_n} choices per request, got {r.n}", param="n")
    if r.max_tokens is not None and r.max_tokens > limits.max_tokens:
        raise APIError(400, f"max_tokens: at most {limits.max_tokens}, got {r.max_tokens}", param="max_tokens")
    stops = r.stops()
    if len(stops) > limits.max_stop:
        raise APIError(400, f"stop: at most {limits.max_stop} stop strings, got {len(stops)}", param="stop")
    if any(not s or len(s) > limits.max_stop_chars for s in stops):
        raise APIError(400, f"stop: each stop string needs 1 to {limits.max_stop_chars} characters", param="stop")
    if r.stream_options is not None and not r.stream:
        raise APIError(400, "stream_options: only allowed when stream is true", param="stream_options")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(r, name):
            raise _unsupported(name, "a non-zero penalty")
    if r.logit_bias:
        raise _unsupported("logit_bias", "logit_bias")
    if isinstance(r, ChatCompletionRequest):
        _check_chat(r, limits)
    elif isinstance(r, CompletionRequest):
        _check_completion(r, limits)


def _check_chat(r: ChatCompletionRequest, limits: Limits) -> None:
    if r.max_completion_tokens is not None and r.max_completion_tokens > limits.max_tokens:
        raise APIError(400, f"max_completion_tokens: at most {limits.max_tokens}", param="max_completion_tokens")
    if not 1 <= len(r.messages) <= limits.max_messages:
        raise APIError(400, f"messages: 1 to {limits.max_messages} messages, got {len(r.messages)}",
                       param="messages")
    total = 0
    for i, m in enumerate(r.messages):
        n = len(m.text())
        if n > limits.max_message_chars:
            raise APIError(400, f"messages.{i}.content: {n:,} characters; the limit is "
                                f"{limits.max_message_chars:,} per message", param=f"messages.{i}.content")
        total += n
    if total > limits.max_total_chars:
        raise APIError(400, f"messages: {total:,} characters in all; the limit is {limits.max_total_chars:,}",
                       param="messages")
    if r.messages[-1].role != "user":
        raise APIError(400, "messages: the last message must be from the user (the model writes the next one)",
                       param="messages")
    if r.logprobs:
        raise _unsupported("logprobs", "logprobs on chat completions (use /v1/completions)")
    if r.tools:
        raise _unsupported("tools", "function calling")
    if r.response_format is not None and r.response_format.get("type", "text") != "text":
        raise _unsupported("response_format", f"response_format {r.response_format.get('type')!r}")


def _check_completion(r: CompletionRequest, limits: Limits) -> None:
    prompts = prompt_list(r.prompt)
    if not prompts:
        raise APIError(400, "prompt: needs at least one prompt", param="prompt")
    if len(prompts) > limits.max_prompts:
        raise APIError(400, f"prompt: at most {limits.max_prompts} prompts per request", param="prompt")
    for p in prompts:
        if isinstance(p, str) and len(p) > limits.max_total_chars:
            raise APIError(400, f"prompt: {len(p):,} characters; the limit is {limits.max_total_chars:,}",
                           param="prompt")
    if r.logprobs is not None and r.logprobs > limits.max_top_logprobs:
        raise APIError(400, f"logprobs: at most {limits.max_top_logprobs}", param="logprobs")
    if r.stream and (r.echo or r.logprobs is not None):
        raise _unsupported("stream", "streaming together with echo or logprobs")
    if r.max_tokens == 0 and not r.echo:
        raise APIError(400, "max_tokens: 0 is only allowed with echo (scoring the prompt)", param="max_tokens")
    if r.suffix:
        raise _unsupported("suffix", "suffix (fill-in-the-middle)")
    if r.best_of not in (None, 1):
        raise _unsupported("best_of", "best_of > 1")
# --8<-- [end:check_limits]


def prompt_list(prompt: Prompt) -> list[Union[str, list[int]]]:
    """OpenAI's four prompt forms -> a list of prompts, each a string or a list of token ids."""
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(x, int) for x in prompt):
        return [list(prompt)]               # one prompt given as token ids
    return list(prompt)                     # several strings, or several id lists


# -- response bodies -----------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


@dataclass
class Head:
    """What every object of one response shares: id, creation time, model name."""
    id: str
    model: str
    created: int

    @classmethod
    def new(cls, prefix: str, model: str) -> "Head":
        return cls(new_id(prefix), model, int(time.time()))


def chat_response(h: Head, choices: list[tuple[str, str]], use: dict) -> dict:
    """A non-streamed chat completion; ``choices`` are (text, finish_reason)."""
    return {"id": h.id, "object": "chat.completion", "created": h.created, "model": h.model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": reason} for i, (text, reason) in enumerate(choices)],
            "usage": use}


# --8<-- [start:chunk]
def chat_chunk(h: Head, index: int, delta: dict, finish_reason: str | None = None,
               with_usage: bool = False) -> dict:
    """One ``chat.completion.chunk``: a piece of one choice (``delta``), or its end (``finish_reason``)."""
    chunk = {"id": h.id, "object": "chat.completion.chunk", "created": h.created, "model": h.model,
             "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    if with_usage:             # include_usage: every chunk carries "usage": null, the last one the counts
        chunk["usage"] = None
    return chunk


def usage_chunk(h: Head, object: str, use: dict) -> dict:
    """The extra last chunk of ``stream_options.include_usage``: no choices, the usage counts."""
    return {"id": h.id, "object": object, "created": h.created, "model": h.model, "choices": [], "usage": use}
# --8<-- [end:chunk]


def completion_response(h: Head, choices: list[dict], use: dict) -> dict:
    """A non-streamed text completion; each choice has text, finish_reason and logprobs."""
    return {"id": h.id, "object": "text_completion", "created": h.created, "model": h.model,
            "choices": [{"index": i, "text": c["text"], "logprobs": c.get("logprobs"),
                         "finish_reason": c["finish_reason"]} for i, c in enumerate(choices)],
            "usage": use}


def completion_chunk(h: Head, index: int, text: str, finish_reason: str | None = None,
                     with_usage: bool = False) -> dict:
    chunk = {"id": h.id, "object": "text_completion", "created": h.created, "model": h.model,
             "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}]}
    if with_usage:
        chunk["usage"] = None
    return chunk


def models_response(names: list[str], created: int) -> dict:
    return {"object": "list", "data": [{"id": n, "object": "model", "created": created,
                                        "owned_by": "mini-nanochat"} for n in names]}
