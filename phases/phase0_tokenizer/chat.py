"""The chat format: turn a conversation into token ids and a loss mask.

A chat model is still a next-token predictor; a conversation becomes one token stream
with special tokens marking who speaks. The mask says which tokens the model is
*trained to produce* (1) and which it only reads (0):

    <|bos|> <|user_start|> user text <|user_end|> <|assistant_start|> reply <|assistant_end|>
       0         0             0           0               0            1          1

Rules (nanochat's):
- roles alternate user, assistant, user, … starting with user; an optional leading
  ``system`` message is merged into the first user message, joined by a blank line;
- user content is a string; assistant content is a string or a list of parts
  ``{"type": "text" | "python" | "python_output", "text": "..."}``;
- supervised (1): assistant text, ``<|python_start|>`` + tool call + ``<|python_end|>``,
  and ``<|assistant_end|>``; unsupervised (0): bos, user turns, ``<|assistant_start|>``
  and ``<|output_start|>`` + tool output + ``<|output_end|>`` (the tool writes those at
  inference time, so the model must not learn to invent them);
- the result is cut to ``max_tokens``.

A conversation is a dict with a ``messages`` list, or the bare list itself.
What it leaves out: multi-modal parts, tool schemas, chat templates in Jinja.

Run: ``python -m phases.phase0_tokenizer.chat`` renders an example with a tiny tokenizer.
"""
from __future__ import annotations

import copy
from typing import Any, Protocol, Sequence


class ConversationError(ValueError):
    """A malformed conversation; the message names the problem and where it is."""


class Tokenizer(Protocol):  # what rendering needs from a tokenizer
    def encode(self, text: str) -> list[int]: ...
    def encode_special(self, name: str) -> int: ...


PART_TYPES = ("text", "python", "python_output")
EXAMPLE = {"messages": [  # two turns, one with a python tool call: every kind of span the mask knows
    {"role": "user", "content": "What is 12 squared, plus 1?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me compute it."},
        {"type": "python", "text": "12**2 + 1"},
        {"type": "python_output", "text": "145"},
        {"type": "text", "text": "12 squared plus 1 is 145."}]},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome 🙂"},
]}


def _messages(conversation: Any) -> list[dict]:
    if isinstance(conversation, dict):
        if "messages" not in conversation:
            raise ConversationError("conversation dict has no 'messages' key")
        conversation = conversation["messages"]
    if not isinstance(conversation, (list, tuple)):
        raise ConversationError(f"messages must be a list, got {type(conversation).__name__}")
    if not conversation:
        raise ConversationError("conversation has no messages")
    for i, m in enumerate(conversation):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ConversationError(f"message {i} must be a dict with 'role' and 'content'")
    messages = [dict(m) for m in conversation]
    if messages[0]["role"] == "system":
        system = messages.pop(0)
        if not isinstance(system["content"], str):
            raise ConversationError("message 0 (system): content must be a string")
        if not messages or messages[0]["role"] != "user":
            raise ConversationError("a system message must be followed by a user message")
        if not isinstance(messages[0]["content"], str):
            raise ConversationError("message 1 (user): content must be a string")
        messages[0]["content"] = system["content"] + "\n\n" + messages[0]["content"]
        offset = 1  # error messages count positions in the caller's list
    else:
        offset = 0
    for i, m in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise ConversationError(
                f"message {i + offset}: expected role {expected!r}, got {m['role']!r} "
                "(roles alternate user/assistant, starting with user; only the first may be system)")
    return messages


def _parts(content: Any, index: int) -> list[tuple[str, str]]:
    if isinstance(content, str):
        return [("text", content)]
    if not isinstance(content, list):
        raise ConversationError(f"message {index} (assistant): content must be a string or a list "
                                f"of parts, got {type(content).__name__}")
    parts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ConversationError(f"message {index}, part {j}: unknown part type {kind!r} "
                                    f"(expected one of {', '.join(PART_TYPES)})")
        if not isinstance(part.get("text"), str):
            raise ConversationError(f"message {index}, part {j}: 'text' must be a string")
        parts.append((part["type"], part["text"]))
    return parts


def check_conversation(conversation: Any) -> list[dict]:
    """The messages, checked as ``render_conversation`` checks them (no tokenizer needed).

    A ``ConversationError`` names the first problem; the dataset inspector lists them.
    """
    messages = _messages(conversation)
    for i, m in enumerate(messages):
        if m["role"] == "user" and not isinstance(m["content"], str):
            raise ConversationError(f"message {i}: user content must be a string, got {type(m['content']).__name__}")
        if m["role"] == "assistant":
            _parts(m["content"], i)
    return messages


# --8<-- [start:render_conversation]
def render_conversation(tokenizer: Tokenizer, conversation: Any,
                        max_tokens: int = 2048) -> tuple[list[int], list[int]]:
    """Return ``(ids, mask)`` of equal length; ``mask[i] == 1`` where the loss applies."""
    messages = check_conversation(conversation)
    sp = tokenizer.encode_special
    ids: list[int] = []
    mask: list[int] = []

    def add(tokens: Sequence[int], supervised: int) -> None:
        ids.extend(tokens)
        mask.extend([supervised] * len(tokens))

    add([sp("<|bos|>")], 0)
    for i, m in enumerate(messages):
        if m["role"] == "user":
            add([sp("<|user_start|>")], 0)
            add(tokenizer.encode(m["content"]), 0)
            add([sp("<|user_end|>")], 0)
            continue
        add([sp("<|assistant_start|>")], 0)      # given at inference: the model starts after it
        for kind, text in _parts(m["content"], i):
            if kind == "text":
                add(tokenizer.encode(text), 1)
            elif kind == "python":                # the model writes the tool call: supervised
                add([sp("<|python_start|>")], 1)
                add(tokenizer.encode(text), 1)
                add([sp("<|python_end|>")], 1)
            else:                                 # the tool writes its output: not supervised
                add([sp("<|output_start|>")], 0)
                add(tokenizer.encode(text), 0)
                add([sp("<|output_end|>")], 0)
        add([sp("<|assistant_end|>")], 1)          # the model must learn to stop
    return ids[:max_tokens], mask[:max_tokens]
# --8<-- [end:render_conversation]


def render_for_completion(tokenizer: Tokenizer, conversation: Any) -> list[int]:
    """Ids that prime the model to write the final assistant turn (used in RL and eval).

    The conversation must end with an assistant message; it is removed, the rest is
    rendered and ``<|assistant_start|>`` appended.
    """
    messages = _messages(copy.deepcopy(conversation))
    if messages[-1]["role"] != "assistant":
        raise ConversationError("render_for_completion needs a conversation that ends with an "
                                "assistant message (it is the one to be completed)")
    ids, _ = render_conversation(tokenizer, messages[:-1], max_tokens=1 << 62)
    return ids + [tokenizer.encode_special("<|assistant_start|>")]


if __name__ == "__main__":
    from phases.phase0_tokenizer.bpe import BPETokenizer

    tok = BPETokenizer.train([str(EXAMPLE) * 50], vocab_size=300)
    ids, mask = render_conversation(tok, EXAMPLE)
    for i, m in zip(ids, mask):
        print(f"{m} {i:5d} {tok.decode([i])!r}")
