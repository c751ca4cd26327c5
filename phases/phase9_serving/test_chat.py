"""Phase 9 checkpoint: ``chat`` driven through a pseudo-terminal, as a person types into it.

The command runs in its own process on a pty (so ``readline`` and ``isatty`` behave as
in a terminal), loads the tiny chat model the way a user's run is loaded, and answers
typed lines; ``/undo``, ``/regenerate``, ``/save`` and the context-overflow notice are
checked on its screen output, UTF-8 byte for byte. ``-p`` into a pipe prints the reply only.
"""
from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phases.phase9_serving.conftest import CONVERSATIONS, _text

pytestmark = pytest.mark.phase9
REPO = Path(__file__).resolve().parents[2]
ANSWER = {q: _text(a) for q, a in CONVERSATIONS}


def _env(base) -> dict:
    return {**os.environ, "MINI_NANOCHAT_BASE_DIR": str(base), "NO_COLOR": "1", "TERM": "dumb",
            "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


class Terminal:
    """A process on a pseudo-terminal: ``send`` a line, ``expect`` a pattern in what it prints."""

    def __init__(self, args: list[str], env: dict):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "phases.phase9_serving.chat", *args], stdin=slave,
                                     stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def expect(self, pattern: str, timeout: float = 90) -> str:
        """Read until ``pattern`` (a regex) appears in the new output; return the text up to its end."""
        deadline = time.time() + timeout
        rx = re.compile(pattern.encode())
        while True:
            m = rx.search(self.seen)
            if m:
                out, self.seen = self.seen[:m.end()], self.seen[m.end():]
                return out.decode("utf-8").replace("\r\n", "\n")
            left = deadline - time.time()
            assert left > 0, f"no {pattern!r} in {self.seen.decode('utf-8', 'replace')!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:      # the process closed the terminal
                    assert rx.search(self.seen), f"exited without {pattern!r}: {self.seen!r}"

    def send(self, line: str) -> None:
        os.write(self.master, line.encode("utf-8") + b"\n")

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


def test_chat_in_a_terminal(chat_run, tmp_path):
    t = Terminal(["--temperature", "0", "--context", "96", "--max-tokens", "30"], _env(chat_run["base"]))
    try:
        t.expect(r"model: sft_tiny .*context 96 tokens")
        t.expect("you> ")
        t.send("Say hello in Japanese.")
        assert ANSWER["Say hello in Japanese."] in t.expect("you> ")            # UTF-8 streamed whole
        t.send("/undo")
        assert "removed the last exchange (0 left)" in t.expect("you> ")
        t.send("/undo")
        assert "error: nothing to undo" in t.expect("you> ")
        t.send("What is 48/2?")
        assert "model> Half of 48 is [calc 48/2 = 24]24." in t.expect("you> ")
        t.send("/regenerate")
        assert "Half of 48 is [calc 48/2 = 24]24." in t.expect("you> ")
        saved = tmp_path / "chat.json"
        t.send(f"/save {saved}")
        assert "saved 1 exchange(s)" in t.expect("you> ")
        parts = json.loads(saved.read_text())["messages"][1]["content"]
        assert {"type": "python", "text": "48/2"} in parts and {"type": "python_output", "text": "24"} in parts
        t.send("/temperature")
        assert "temperature = 0.0" in t.expect("you> ")
        t.send("Who are you?")
        t.expect("you> ")
        t.send("Count to five.")
        screen = t.expect("you> ")
        assert "oldest 1 exchange(s) were dropped" in screen and ANSWER["Count to five."] in screen
        t.send("/load " + str(saved))
        assert "loaded 1 exchange(s)" in t.expect("you> ")
        t.send("/nope")
        assert "unknown command /nope" in t.expect("you> ")
        t.send("/quit")
    finally:
        code = t.close()
    assert code == 0


def test_one_shot_prompt_into_a_pipe(chat_run):
    r = subprocess.run([sys.executable, "-m", "phases.phase9_serving.chat", "-p", "Count to five.", "--temperature",
                        "0"], capture_output=True, env=_env(chat_run["base"]), cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode("utf-8") == ANSWER["Count to five."] + "\n"          # the reply only, no colour
    r = subprocess.run([sys.executable, "-m", "phases.phase9_serving.chat", "--run", "no_such_run", "-p", "hi"],
                       capture_output=True, env=_env(chat_run["base"]), cwd=REPO, timeout=120)
    assert r.returncode == 2 and r.stderr.decode().startswith("error: no run or checkpoint at no_such_run")
    r = subprocess.run([sys.executable, "-m", "phases.phase9_serving.chat", "-p", "Count to five.", "--context", "3"],
                       capture_output=True, env=_env(chat_run["base"]), cwd=REPO, timeout=120)
    assert r.returncode == 2 and b"fills the context (3 tokens)" in r.stderr and b"Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "phases.phase9_serving.chat", "-p", "hi", "--context", "100000000"],
                       capture_output=True, env=_env(chat_run["base"]), cwd=REPO, timeout=120)
    assert r.returncode == 2 and b"rotary table" in r.stderr and b"Traceback" not in r.stderr


def test_load_refuses_files_that_are_no_conversation(chat_run, tmp_path):
    """Issue 15 re-attack: /load of 100k nested '[' or of [1, 2] gave tracebacks; now an error line, and on."""
    from phases.phase9_serving import chat as chat_mod
    deep, ints = tmp_path / "deep.json", tmp_path / "ints.json"
    deep.write_text("[" * 100_000)
    ints.write_text("[1, 2]")
    c = chat_mod.Chat.__new__(chat_mod.Chat)
    c.session = None
    for f, message in ((deep, "nested too deeply"), (ints, "expected a list of messages")):
        with pytest.raises(ValueError, match=message):       # the loop prints "error: ..." and reads on
            c.command(f"/load {f}")
