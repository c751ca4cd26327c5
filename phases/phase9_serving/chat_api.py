"""``POST /v1/chat/completions``: OpenAI's chat endpoint over Phase 0's chat format.

A request's ``messages`` become one prompt: Phase 0's ``render_conversation`` (system
merged into the first user message, roles alternating) followed by
``<|assistant_start|>``, so the model writes the next assistant turn. Assistant
messages sent back by the client may hold calculator calls in ``<<expr=result>>``
notation; they become the model's tool tokens again (``toolcalls.to_parts``).

When the conversation plus the reply would not fit the context window, the oldest
exchanges are dropped (the system message and the last user message stay), as
Phase 6's ``Session`` does in the terminal; the response says how many went in the
``X-Dropped-Messages`` header. OpenAI answers 400 instead; a model with a 256-token
window would be unusable in a chat client that way. If the last message alone does not
fit, the answer is OpenAI's 400 ``context_length_exceeded``.

Streamed, the reply is ``chat.completion.chunk`` events: a first chunk per choice with
``delta.role``, then ``delta.content`` pieces, then an empty delta with
``finish_reason``, then (with ``stream_options.include_usage``) a usage chunk, then
``data: [DONE]``.

What it leaves out: tool/function calling by the client, logprobs (use
``/v1/completions``), images.

Run nothing here directly; ``server.py`` routes to it.
"""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from phases.phase0_tokenizer.chat import ConversationError, render_for_completion
from phases.phase9_serving import protocol as P
from phases.phase9_serving import sse
from phases.phase9_serving.runner import Run, sampling_params
from phases.phase9_serving.toolcalls import to_parts

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def to_conversation(messages: list[P.ChatMessage]) -> list[dict]:
    """OpenAI messages -> Phase 0's conversation (``developer`` is OpenAI's new name for ``system``)."""
    out = []
    for m in messages:
        role = "system" if m.role == "developer" else m.role
        content = m.text()
        out.append({"role": role, "content": to_parts(content) if role == "assistant" else content})
    return out


# --8<-- [start:render]
def render_chat(tokenizer, messages: list[dict], context: int, reserve: int) -> tuple[list[int], int]:
    """(prompt ids, messages dropped): the conversation primed for the next reply, fitted to ``context``."""
    msgs = list(messages)
    dropped = 0
    while True:
        try:
            ids = render_for_completion(tokenizer, msgs + [{"role": "assistant", "content": ""}])
        except ConversationError as e:
            raise P.APIError(400, f"messages: {e}", param="messages") from None
        first_user = 1 if msgs[0]["role"] == "system" else 0
        if len(ids) + reserve <= context or len(msgs) - first_user <= 1:
            return ids, dropped
        del msgs[first_user:first_user + 2]      # the oldest user message and the reply to it
        dropped += 2
# --8<-- [end:render]


async def chat_completions(server, request: Request):
    r = P.parse(P.ChatCompletionRequest, await request.body(), server.settings.limits)
    server.check_model(r.model)
    if r.n > server.scheduler.max_batch:
        raise P.APIError(400, f"n: this server runs at most {server.scheduler.max_batch} rows at once", param="n")
    asked = r.max_completion_tokens if r.max_completion_tokens is not None else r.max_tokens
    if asked == 0:
        raise P.APIError(400, "max_tokens: must be at least 1", param="max_tokens")
    reserve = asked if asked is not None else min(server.settings.default_max_tokens, server.context // 2)
    prompt, dropped = render_chat(server.tokenizer, to_conversation(r.messages), server.context, reserve)
    params = sampling_params(server, r, server.budget(len(prompt), asked))
    run = Run(server, request, [prompt], params, r.n).start()
    head = P.Head.new("chatcmpl", server.settings.model_name)
    headers = {"X-Request-Id": head.id, "X-Dropped-Messages": str(dropped)}
    request.state.log = {"request_id": head.id, "stream": r.stream}
    if r.stream:
        usage = r.stream_options is not None and r.stream_options.include_usage
        return StreamingResponse(_stream(run, head, usage, request), media_type="text/event-stream",
                                 headers={**STREAM_HEADERS, **headers})
    gone = await run.collect()
    request.state.log = run.log_fields(**request.state.log)
    return gone or JSONResponse(P.chat_response(head, list(zip(run.texts, run.finish)), run.usage()),
                                headers=headers)


# --8<-- [start:stream]
async def _stream(run: Run, head: P.Head, usage: bool, request: Request):
    """The SSE body: role chunks, content chunks, finish chunks, [usage], [DONE]."""
    try:
        for c in range(run.choices):
            yield sse.frame(P.chat_chunk(head, c, {"role": "assistant", "content": ""}, with_usage=usage))
        async for piece in run.pieces(ping_every=10.0):
            if piece is None:
                yield sse.PING
                continue
            if piece.text:
                yield sse.frame(P.chat_chunk(head, piece.choice, {"content": piece.text}, with_usage=usage))
            if piece.finish_reason:
                yield sse.frame(P.chat_chunk(head, piece.choice, {}, piece.finish_reason, with_usage=usage))
        if usage:
            yield sse.frame(P.usage_chunk(head, "chat.completion.chunk", run.usage()))
        yield sse.DONE
    except P.APIError as e:                      # a timeout or a failure mid-stream: an error event
        yield sse.frame(e.body())
        yield sse.DONE
    finally:
        request.state.log = run.log_fields(**request.state.log)
# --8<-- [end:stream]
