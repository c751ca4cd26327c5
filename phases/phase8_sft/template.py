"""The chat format from the outside: tokens back to a conversation, OpenAI messages, and Jinja.

Phase 0's ``render_conversation`` is the one definition of how a conversation becomes
tokens and a loss mask. Three views of it that other software needs:

- ``parse_tokens``: the inverse, ids -> conversation. ``render -> parse -> render``
  gives the same ids; a leading system message comes back merged into the first user
  message, exactly as the renderer merged it;
- ``from_openai`` / ``to_openai``: OpenAI-style messages, where a tool call is an
  assistant ``tool_calls`` entry and its result a ``tool`` message, to and from our
  assistant ``parts`` (``python`` / ``python_output``);
- ``CHAT_TEMPLATE``: the same format as a Hugging Face Jinja ``chat_template``, with
  ``{% generation %}`` markers around the supervised text (what TRL's
  ``assistant_only_loss`` needs). ``jinja_ids_and_mask`` renders it the way
  ``transformers`` does (the whole string, special tokens recognised, the mask from the
  characters inside generation blocks), so a test can show that it gives the same ids and
  mask as ``render_conversation``.

One difference is inherent: ``render_conversation`` encodes each assistant part on its
own, a Jinja template renders one string. Two text parts in a row ("a", "b") can therefore
tokenize differently; ``normalise`` merges them, and then both agree.

What it leaves out: other tool schemas (function names and JSON arguments other than an
expression), images.

Run: ``python -m phases.phase8_sft.template`` prints the Jinja template.
"""
from __future__ import annotations

import copy
import json
import re

from phases.phase0_tokenizer.chat import ConversationError

SPECIALS = ("<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
            "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>")


def normalise(conversation, merge_system: bool = True) -> dict:
    """``{"messages": ...}`` with adjacent assistant text parts joined (a list of one text part
    becomes a plain string) and, with ``merge_system``, a leading system message merged into the
    first user message as rendering merges it."""
    record = {"messages": conversation} if isinstance(conversation, list) else copy.deepcopy(conversation)
    messages = [dict(m) for m in record["messages"]]
    if merge_system and messages and messages[0]["role"] == "system" and len(messages) > 1:
        system = messages.pop(0)
        messages[0]["content"] = system["content"] + "\n\n" + messages[0]["content"]
    for m in messages:
        if m["role"] == "assistant" and isinstance(m["content"], list):
            parts: list[dict] = []
            for p in m["content"]:
                if p["type"] == "text" and not p["text"]:
                    continue                                  # renders to nothing
                if p["type"] == "text" and parts and parts[-1]["type"] == "text":
                    parts[-1] = {"type": "text", "text": parts[-1]["text"] + p["text"]}
                else:
                    parts.append({"type": p["type"], "text": p["text"]})
            single = len(parts) == 1 and parts[0]["type"] == "text"
            m["content"] = parts[0]["text"] if single else (parts or "")
    return {**record, "messages": messages}


# --8<-- [start:parse_tokens]
def parse_tokens(tok, ids: list[int]) -> dict:
    """The conversation that ``render_conversation`` turned into ``ids`` (``ConversationError`` if none)."""
    name = {tok.encode_special(s): s for s in SPECIALS}
    if not ids or name.get(ids[0]) != "<|bos|>":
        raise ConversationError("a rendered conversation starts with <|bos|>")
    messages: list[dict] = []
    role = parts = None          # the open message
    kind, run = None, []          # the open part: "text" / "python" / "python_output", and its ids

    def close_part():
        nonlocal kind, run
        if kind is not None and (run or kind != "text"):
            parts.append({"type": kind, "text": tok.decode(run)})
        kind, run = None, []

    for pos, t in enumerate(ids[1:], 1):
        s = name.get(t)
        where = f"token {pos} ({s or repr(tok.decode([t]))})"
        if role is None:                                   # between messages
            if s == "<|user_start|>":
                role, parts, kind = "user", [], "text"
            elif s == "<|assistant_start|>":
                role, parts, kind = "assistant", [], "text"
            else:
                raise ConversationError(f"{where}: expected <|user_start|> or <|assistant_start|>")
        elif role == "user":
            if s == "<|user_end|>":
                messages.append({"role": "user", "content": tok.decode(run)})
                role, kind, run = None, None, []
            elif s is not None:
                raise ConversationError(f"{where}: special token inside a user message")
            else:
                run.append(t)
        elif s is None:
            run.append(t)
        elif s in ("<|python_start|>", "<|output_start|>") and kind == "text":
            close_part()
            kind = "python" if s == "<|python_start|>" else "python_output"
        elif (s, kind) in (("<|python_end|>", "python"), ("<|output_end|>", "python_output")):
            close_part()
            kind = "text"
        elif s == "<|assistant_end|>" and kind == "text":
            close_part()
            content = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
            messages.append({"role": "assistant", "content": "" if not parts else content})
            role = None
        else:
            raise ConversationError(f"{where}: unexpected inside an assistant {kind} part")
    if role is not None:
        raise ConversationError(f"the ids end inside a {role} message")
    return {"messages": messages}
# --8<-- [end:parse_tokens]


def _arguments(call: dict) -> str:
    """The expression of an OpenAI tool call: JSON arguments with one string value, or raw text."""
    args = call.get("function", {}).get("arguments", "")
    try:
        parsed = json.loads(args) if isinstance(args, str) else args
    except json.JSONDecodeError:
        return args
    if isinstance(parsed, dict):
        values = [v for v in parsed.values() if isinstance(v, str)]
        if len(values) == 1:
            return values[0]
        raise ConversationError(f"tool call arguments {args!r}: expected one string (the expression)")
    return parsed if isinstance(parsed, str) else str(parsed)


def from_openai(messages: list[dict]) -> dict:
    """OpenAI chat messages (assistant ``tool_calls``, ``tool`` results) -> our conversation.

    An assistant message, the tool results after it and the assistant messages that follow
    (until the next user message) become one assistant message with parts.
    """
    out: list[dict] = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if isinstance(content, list):                       # OpenAI content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
        if role in ("system", "user", "developer"):
            out.append({"role": "system" if role == "developer" else role, "content": content or ""})
            continue
        if role not in ("assistant", "tool"):
            raise ConversationError(f"message {i}: unknown role {role!r}")
        if not out or out[-1]["role"] != "assistant":
            if role == "tool":
                raise ConversationError(f"message {i}: a tool result must follow an assistant tool call")
            out.append({"role": "assistant", "content": []})
        parts = out[-1]["content"]
        if role == "tool":
            parts.append({"type": "python_output", "text": content or ""})
            continue
        if content:
            parts.append({"type": "text", "text": content})
        for call in m.get("tool_calls") or []:
            parts.append({"type": "python", "text": _arguments(call)})
    return normalise({"messages": out}, merge_system=False)


def to_openai(conversation, tool_name: str = "calculator") -> list[dict]:
    """Our conversation -> OpenAI chat messages; each python part becomes a ``tool_calls`` entry
    with arguments ``{"expression": ...}`` and its output a ``tool`` message."""
    out: list[dict] = []
    n = 0
    for m in (conversation["messages"] if isinstance(conversation, dict) else conversation):
        if m["role"] != "assistant" or isinstance(m["content"], str):
            out.append({"role": m["role"], "content": m["content"]})
            continue
        cur = None
        for p in m["content"]:
            if p["type"] == "python_output":
                out.append({"role": "tool", "tool_call_id": f"call_{n}", "content": p["text"]})
                cur = None
                continue
            if cur is None:
                cur = {"role": "assistant", "content": None}
                out.append(cur)
            if p["type"] == "text":
                if cur.get("tool_calls"):                    # text after a call without output
                    cur = {"role": "assistant", "content": p["text"]}
                    out.append(cur)
                else:
                    cur["content"] = (cur["content"] or "") + p["text"]
            else:
                n += 1
                cur.setdefault("tool_calls", []).append(
                    {"id": f"call_{n}", "type": "function",
                     "function": {"name": tool_name, "arguments": json.dumps({"expression": p["text"]})}})
    return out


# --8<-- [start:chat_template]
# Every tag trims the whitespace around it ({%- -%}), so the indentation below renders as nothing.
CHAT_TEMPLATE = """\
{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
    {%- if loop.first and message.role == 'system' -%}
        {%- set ns.system = message.content + '\\n\\n' -%}
    {%- elif message.role == 'user' -%}
        {{- '<|user_start|>' + ns.system + message.content + '<|user_end|>' -}}
        {%- set ns.system = '' -%}
    {%- elif message.role == 'assistant' -%}
        {{- '<|assistant_start|>' -}}
        {%- if message.content is string -%}
            {%- generation -%}{{- message.content -}}{%- endgeneration -%}
        {%- else -%}
            {%- for part in message.content -%}
                {%- if part.type == 'text' -%}
                    {%- generation -%}{{- part.text -}}{%- endgeneration -%}
                {%- elif part.type == 'python' -%}
                    {%- generation -%}{{- '<|python_start|>' + part.text + '<|python_end|>' -}}{%- endgeneration -%}
                {%- else -%}
                    {{- '<|output_start|>' + part.text + '<|output_end|>' -}}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
        {%- generation -%}{{- '<|assistant_end|>' -}}{%- endgeneration -%}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant_start|>' -}}{%- endif -%}
"""
# --8<-- [end:chat_template]

_OPEN, _CLOSE = "\ue000", "\ue001"   # private-use characters marking generation blocks while rendering


def _environment():
    try:
        import jinja2
        from jinja2 import nodes
        from jinja2.ext import Extension
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        from phases.common.console import UserError
        raise UserError("the Jinja chat template needs jinja2: pip install jinja2") from None

    class Generation(Extension):
        """``{% generation %}…{% endgeneration %}``: transformers' marker of supervised text."""
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_mark"), [], [], body).set_lineno(lineno)

        def _mark(self, caller):
            return _OPEN + caller() + _CLOSE

    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation],
                                         undefined=jinja2.StrictUndefined)


def render_jinja(conversation, template: str = CHAT_TEMPLATE, add_generation_prompt: bool = False
                 ) -> tuple[str, list[tuple[int, int]]]:
    """The template's text for ``conversation`` and the character spans of its generation blocks."""
    messages = conversation["messages"] if isinstance(conversation, dict) else conversation
    marked = _environment().from_string(template).render(messages=messages, bos_token="<|bos|>",
                                                          add_generation_prompt=add_generation_prompt)
    text, spans, start = [], [], None
    for ch in marked:
        if ch == _OPEN:
            start = sum(map(len, text))
        elif ch == _CLOSE:
            spans.append((start, sum(map(len, text))))
        else:
            text.append(ch)
    return "".join(text), spans


def encode_with_specials(tok, text: str) -> list[int]:
    """Encode ``text`` recognising special-token strings, as a Hugging Face tokenizer does."""
    ids: list[int] = []
    for piece in re.split("(" + "|".join(map(re.escape, SPECIALS)) + ")", text):
        if piece in SPECIALS:
            ids.append(tok.encode_special(piece))
        elif piece:
            ids += tok.encode(piece)
    return ids


def jinja_ids_and_mask(tok, conversation, template: str = CHAT_TEMPLATE) -> tuple[list[int], list[int]]:
    """What ``transformers``' ``apply_chat_template(..., return_assistant_tokens_mask=True)`` gives."""
    text, spans = render_jinja(conversation, template)
    ids = encode_with_specials(tok, text)
    inside = bytearray(len(text.encode("utf-8")))
    for a, b in spans:                                  # character spans -> byte spans
        inside[len(text[:a].encode()):len(text[:b].encode())] = b"\x01" * len(text[a:b].encode())
    mask, pos = [], 0
    for t in ids:
        mask.append(int(inside[pos]) if pos < len(inside) else 0)
        pos += len(tok.token_bytes(t))
    return ids, mask


if __name__ == "__main__":
    print(CHAT_TEMPLATE)
