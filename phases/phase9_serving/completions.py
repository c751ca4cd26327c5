"""``POST /v1/completions``: raw text in, text out, and the log-probabilities evaluators need.

No chat format here: the prompt is the model's input as it is. Each prompt is read
after ``<|bos|>`` (every pretraining document starts with it; a prompt that starts with
``<|bos|>`` itself does not get a second one), and the names of special tokens in a
string prompt (``<|user_start|>`` ...) become those tokens, as in vLLM, so a client can
write a chat-formatted prompt by hand. A prompt may also be token ids.

**Log-likelihoods** (``echo: true, logprobs: k, max_tokens: 1``) are what
lm-evaluation-harness's ``local-completions`` model sends for every multiple-choice
task: it sums ``token_logprobs`` over the answer's tokens and compares each with the
best of ``top_logprobs`` to decide whether the answer is the greedy one. ``score`` runs
the model once over the prompt and the generated tokens and reads every token's
log-probability under the model's own distribution (temperature 1, no top-k or top-p)
from one ``log_softmax``; the first token has none (``null``) unless an implicit
``<|bos|>`` precedes it. Scoring runs in the scheduler's thread between two decode
steps (the model has one user).

What it leaves out: ``suffix`` (fill-in-the-middle), ``best_of``, logprobs while streaming.

Run nothing here directly; ``server.py`` routes to it.
"""
from __future__ import annotations

import asyncio
import re

import torch
from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from phases.phase9_serving import protocol as P
from phases.phase9_serving import sse
from phases.phase9_serving.chat_api import STREAM_HEADERS
from phases.phase9_serving.runner import Run, sampling_params


def encode_with_specials(tok, text: str) -> list[int]:
    """Encode ``text``, turning special-token names into their ids (never used on chat messages)."""
    pattern = "(" + "|".join(re.escape(name) for name in tok.special_tokens) + ")"
    ids: list[int] = []
    for i, part in enumerate(re.split(pattern, text)):
        if i % 2:
            ids.append(tok.special_tokens[part])
        elif part:
            ids += tok.encode(part)
    return ids


def prompt_ids(tok, prompt: str | list[int]) -> tuple[list[int], int]:
    """(ids the model reads, 1 if a ``<|bos|>`` was put in front else 0)."""
    if isinstance(prompt, str):
        ids = encode_with_specials(tok, prompt)
    else:
        bad = [i for i in prompt if not 0 <= i < tok.vocab_size]
        if bad:
            raise P.APIError(400, f"prompt: token id {bad[0]} is outside the vocabulary [0, {tok.vocab_size})",
                             param="prompt")
        ids = list(prompt)
    if ids and ids[0] == tok.bos_token_id:
        return ids, 0
    return [tok.bos_token_id] + ids, 1


# --8<-- [start:score]
@torch.inference_mode()
def score(model, ids: list[int], top: int) -> tuple[list[float | None], list[dict | None], list[int]]:
    """Log-probability of each token given the ones before it (the first has none).

    Returns (token_logprobs, top_logprobs, top_ids): ``top_logprobs[i]`` maps the ``top``
    most likely tokens at position i to their log-probabilities (``None`` for i = 0).
    """
    x = torch.tensor([ids], dtype=torch.long, device=model.wte.weight.device)   # (1, T)
    logp = model(x)[0].float().log_softmax(-1)                                    # (T, V)
    target = x[0, 1:]                                                             # (T-1,)
    token_lp = [None] + logp[:-1].gather(1, target[:, None])[:, 0].tolist()
    tops: list = [None]
    if top:
        values, index = logp[:-1].topk(top, dim=-1)                               # (T-1, top)
        tops += [list(zip(i, v)) for i, v in zip(index.tolist(), values.tolist())]
    return token_lp, tops, ids
# --8<-- [end:score]


def logprobs_object(tok, ids: list[int], token_lp, tops, first: int, top: int) -> dict:
    """OpenAI's legacy logprobs object for ``ids[first:]``."""
    strings = [tok.decode([i]) for i in ids[first:]]
    offsets, at = [], 0
    for s in strings:
        offsets.append(at)
        at += len(s)
    top_dicts = []
    for t in tops[first:]:
        top_dicts.append(None if t is None or not top else {tok.decode([i]): v for i, v in t})
    return {"tokens": strings, "token_logprobs": token_lp[first:], "top_logprobs": top_dicts,
            "text_offset": offsets}


async def completions(server, request: Request):
    r = P.parse(P.CompletionRequest, await request.body(), server.settings.limits)
    server.check_model(r.model)
    if r.n > server.scheduler.max_batch:
        raise P.APIError(400, f"n: this server runs at most {server.scheduler.max_batch} rows at once", param="n")
    tok = server.tokenizer
    given = P.prompt_list(r.prompt)
    prompts = [prompt_ids(tok, p) for p in given]
    longest = max(len(ids) for ids, _ in prompts)
    max_tokens = server.budget(longest, r.max_tokens) if r.max_tokens != 0 else 0
    if r.max_tokens == 0 and longest > server.context:
        server.budget(longest, None)            # the prompt alone is too long: the 400 names it
    head = P.Head.new("cmpl", server.settings.model_name)
    request.state.log = {"request_id": head.id, "stream": r.stream}
    params = sampling_params(server, r, max_tokens)
    run = Run(server, request, [ids for ids, _ in prompts], params, r.n)
    if max_tokens > 0:
        run.start()
    if r.stream:
        usage = r.stream_options is not None and r.stream_options.include_usage
        return StreamingResponse(_stream(run, head, usage, request), media_type="text/event-stream",
                                 headers={**STREAM_HEADERS, "X-Request-Id": head.id})
    if max_tokens > 0:
        gone = await run.collect()
        if gone is not None:
            return gone
    choices = []
    for c in range(run.choices):
        p = c // r.n
        ids, implicit = prompts[p]
        gen = run.tokens[c]
        choice = {"text": run.texts[c], "finish_reason": run.finish[c] or "length"}
        if r.echo:
            choice["text"] = (given[p] if isinstance(given[p], str) else tok.decode(given[p])) + choice["text"]
        if r.logprobs is not None:
            full = ids + gen
            fut = server.scheduler.call(lambda full=full: score(server.model, full, r.logprobs))
            token_lp, tops, _ = await asyncio.wrap_future(fut)
            first = implicit if r.echo else len(ids)
            choice["logprobs"] = logprobs_object(tok, full, token_lp, tops, first, r.logprobs)
        choices.append(choice)
    request.state.log = run.log_fields(**request.state.log)
    return JSONResponse(P.completion_response(head, choices, run.usage()), headers={"X-Request-Id": head.id})


async def _stream(run: Run, head: P.Head, usage: bool, request: Request):
    try:
        async for piece in run.pieces(ping_every=10.0):
            if piece is None:
                yield sse.PING
            elif piece.text or piece.finish_reason:
                yield sse.frame(P.completion_chunk(head, piece.choice, piece.text, piece.finish_reason,
                                                   with_usage=usage))
        if usage:
            yield sse.frame(P.usage_chunk(head, "text_completion", run.usage()))
        yield sse.DONE
    except P.APIError as e:
        yield sse.frame(e.body())
        yield sse.DONE
    finally:
        request.state.log = run.log_fields(**request.state.log)
