"""``mini-nanochat chat``: talk to your model in the terminal.

    mini-nanochat chat                                # the newest chat model (else the demo's base model)
    mini-nanochat chat --run sft_d4 --temperature 0.3
    mini-nanochat chat -p "What is 12*7?"             # one question, one answer, then exit
    echo "Tell me a story" | mini-nanochat chat -p -  # the question from standard input
    python -m phases.phase9_serving.chat --help       # the same command without the package's CLI

The conversation is a Phase 6 ``Session``: its KV cache stays between turns, so each turn
prefills only the new message (nanochat's CLI re-prefills the whole conversation every
turn). Replies stream as the model writes them, never half a UTF-8 character; calculator
calls are shown apart from the text (``[calc 48/2 = 24]``). When the conversation no
longer fits the context, the oldest exchanges are dropped and a notice says so.

Line editing and history come from the standard library's ``readline`` (arrow keys,
Ctrl-R; the history is kept in ``<base>/chat_history``). Commands start with ``/``
(``/help`` lists them). Ctrl-C stops a reply midway; Ctrl-D or ``/quit`` leaves. With
``-p`` and output to a pipe, only the reply is printed: no colour, no prompts.

What it leaves out: several conversations at once (that is the server), multi-line
input (end a line with ``\\`` to continue it).

Run: ``python -m phases.phase9_serving.chat --run cpu_demo``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from phases.common.console import UserError, paint, positive_int, run_command, use_color

HELP = """commands:
  /temperature [T]  show or set the temperature (0 = always the most likely token)
  /top-k [K]        show or set top-k (0 = off)      /top-p [P]   show or set top-p (1 = off)
  /system [TEXT]    show or set the system prompt (restarts the conversation with it)
  /undo             remove the last exchange         /regenerate  answer the last message again
  /clear            start a new conversation         /save FILE   save the conversation (JSON)
  /load FILE        continue a saved conversation    /help        this list
  /quit             leave (or Ctrl-D); Ctrl-C stops a reply midway"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", help="run name, run folder or checkpoint folder (default: the newest chat "
                                 "model, else the demo's base model)")
    p.add_argument("-p", "--prompt", help="ask one question, print the answer and exit ('-': read standard input)")
    p.add_argument("--temperature", type=float, default=0.6, help="(default 0.6, as nanochat's CLI)")
    p.add_argument("--top-k", type=int, default=50, help="(default 50; 0 = off)")
    p.add_argument("--top-p", type=float, default=None, help="(default: off)")
    p.add_argument("--max-tokens", type=positive_int, default=256, help="longest reply (default 256)")
    p.add_argument("--system", help="a system prompt")
    p.add_argument("--seed", type=int, default=None, help="seed of the first reply (default: random)")
    p.add_argument("--context", type=positive_int, default=None,
                   help="tokens kept (default: the model's sequence_len)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: cuda if available, else cpu)")
    p.add_argument("--no-color", action="store_true", help="no colours (NO_COLOR is honoured too)")


class Chat:
    """The terminal loop over one ``Session``; ``out`` is where replies go."""

    def __init__(self, session, out=sys.stdout, color: bool = False):
        self.session, self.out, self.color = session, out, color

    def say(self, text: str, code: str = "2") -> None:
        print(paint(text, code, self.color), file=self.out, flush=True)

    # --8<-- [start:stream]
    def stream(self, reply) -> None:
        """Print a reply as it comes: text as it is, calculator calls set apart."""
        from phases.phase9_serving.toolcalls import ToolText
        if reply.dropped_turns:
            self.say(f"(the conversation outgrew the context of {self.session.cache.max_len} tokens: "
                     f"the oldest {reply.dropped_turns} exchange(s) were dropped)", "33")
        tool = ToolText()
        try:
            for ev in reply:
                self._show(tool.push(ev.text))
            self._show(tool.flush())
        except KeyboardInterrupt:
            self._show(tool.flush())
            self.out.write(paint(" [stopped]", "2", self.color))
        self.out.write("\n")
        self.out.flush()

    def _show(self, segments) -> None:
        for seg in segments:
            if seg[0] == "text":
                self.out.write(seg[1])
            else:
                shown = f"[calc {seg[1]} = {seg[2]}]" if seg[2] is not None else f"[calc {seg[1]}: no result]"
                self.out.write(paint(shown, "1;33", self.color))
        self.out.flush()
    # --8<-- [end:stream]

    def command(self, line: str) -> bool:
        """Run one /command; False means leave."""
        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        s = self.session
        knobs = {"temperature": "temperature", "top-k": "top_k", "top-p": "top_p"}
        if name in ("quit", "exit", "q"):
            return False
        if name == "help":
            self.say(HELP, "0")
        elif name in knobs:
            field = knobs[name]
            if arg:
                value = int(arg) if field == "top_k" else float(arg)
                s.params = replace(s.params, **{field: (value or None) if field == "top_k" else value})
            self.say(f"{name} = {getattr(s.params, field)}")
        elif name == "clear":
            self.restart(s.system, [])
            self.say("new conversation")
        elif name == "undo":
            s.undo()
            self.say(f"removed the last exchange ({len(s.exchanges)} left)")
        elif name == "regenerate":
            self.stream(s.regenerate())
        elif name == "system":
            if arg:
                self.restart(arg, saved_messages(s)[1 if s.system else 0:])
            self.say(f"system prompt: {self.session.system!r}")
        elif name == "save":
            from phases.common.files import atomic_write_text
            if not arg:
                raise ValueError("/save needs a file name")
            atomic_write_text(arg, json.dumps({"messages": saved_messages(s)}, ensure_ascii=False, indent=2))
            self.say(f"saved {len(s.exchanges)} exchange(s) to {arg}")
        elif name == "load":
            with open(arg, encoding="utf-8") as f:
                try:
                    data = json.load(f)
                except RecursionError:
                    raise ValueError(f"{arg}: JSON nested too deeply") from None
            messages = data.get("messages") if isinstance(data, dict) else data
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise ValueError(f"{arg}: expected a list of messages, or an object with 'messages'")
            s.load(messages)
            for m in s.messages:
                self.say(f"{m['role']}: {m['content'] if isinstance(m['content'], str) else '(parts)'}", "0")
            self.say(f"loaded {len(s.exchanges)} exchange(s) from {arg}")
        else:
            self.say(f"unknown command /{name} (/help lists them)", "31")
        return True

    def restart(self, system: str | None, messages: list[dict]) -> None:
        """A fresh session (same engine, knobs and context) holding ``messages`` after ``system``."""
        from phases.phase6_inference.session import Session
        s = self.session
        self.session = Session(s.engine, system=system, params=s.params, max_len=s.cache.max_len)
        if messages:
            self.session.load(([{"role": "system", "content": system}] if system else []) + messages)

    def loop(self, read=input) -> None:
        self.say("chat with the model: /help lists the commands, Ctrl-D leaves")
        while True:
            try:
                line = read(paint("you> ", "1;36", self.color))
                while line.endswith("\\"):
                    line = line[:-1] + "\n" + read("...> ")
            except EOFError:
                self.out.write("\n")
                return
            except KeyboardInterrupt:
                self.out.write("\n")
                continue
            if not line.strip():
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line.strip()):
                        return
                    continue
                self.out.write(paint("model> ", "1;32", self.color))
                self.stream(self.session.send(line))
            except (ValueError, IndexError, OSError, KeyError) as e:
                self.say(f"error: {e}", "31")


def saved_messages(session) -> list[dict]:
    """The conversation with calculator calls as parts, as Phase 0's chat format (and ``/load``) reads them."""
    from phases.phase9_serving.toolcalls import ToolText, as_text, to_parts
    out = []
    for m in session.messages:
        if m["role"] == "assistant" and isinstance(m["content"], str):
            tool = ToolText()
            m = {"role": "assistant", "content": to_parts(as_text(tool.push(m["content"]) + tool.flush()))}
        out.append(m)
    return out


def _history():
    """Line editing and a history file, where the platform has readline."""
    try:
        import readline
    except ImportError:
        return None
    from phases.common.paths import base_dir
    path = base_dir() / "chat_history"
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    return lambda: readline.write_history_file(path)


def run(args) -> None:
    from phases.phase6_inference.engine import Engine, SamplingParams
    from phases.phase6_inference.session import Session
    from phases.phase9_serving.serve import load

    question = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k or None,
                                top_p=args.top_p, seed=args.seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    model, tok, name, is_chat = load(args.run, args.device)
    try:
        engine = Engine(model, tok, max_context=args.context or model.config.sequence_len)
        session = Session(engine, system=args.system, params=params)
    except ValueError as e:                          # --context beyond the model's rotary table
        raise UserError(f"--context {args.context}: {e}") from None
    tty = sys.stdout.isatty()
    chat = Chat(session, color=use_color(sys.stdout) and not args.no_color)
    if question is not None:
        if not question.strip():
            raise UserError("the prompt is empty")
        try:
            reply = session.send(question.strip())
        except ValueError as e:                      # e.g. the question alone fills --context
            raise UserError(str(e)) from None
        chat.stream(reply)
        return
    if not sys.stdin.isatty() and not tty:
        raise UserError("no terminal: use -p PROMPT (or -p - to read the question from standard input)")
    if not is_chat:
        chat.say(f"note: {name} is a base model (pretrained only): it continues text rather than chatting. "
                 "Fine-tune it (Phase 8) for a chat model.", "33")
    chat.say(f"model: {name} ({sum(p.numel() for p in model.parameters()):,} parameters, "
             f"context {session.cache.max_len} tokens)")
    save = _history()
    try:
        chat.loop()
    finally:
        if save:
            save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phases.phase9_serving.chat",
                                     description="Chat with a trained model in the terminal.", epilog=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
