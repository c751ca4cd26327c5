"""Phase 7 checkpoint: the sandbox contains every attack on the list, and says how long each took.

Each attack is a program a model could write. "Contained" means: the program failed or was
stopped, the harm it aimed at did not happen (checked from outside), nothing it started is
still running, and this process is unharmed. The time of each is printed at the end of the
run (``pytest phases/phase7_eval/test_sandbox.py``), in the "sandbox attack list" section.
"""
from __future__ import annotations

import os
import socket
import time

import pytest

pytestmark = pytest.mark.phase7
ATTACK_TIMES: list[tuple[str, float, str]] = []      # (attack, seconds, how it ended): printed by conftest


def attack(sandbox, name: str, code: str, timeout_s: float = 5.0, **kw):
    r = sandbox.run_program(code, timeout_s=timeout_s, **kw)
    ATTACK_TIMES.append((name, r.seconds, "timed out, killed" if r.timed_out else r.error[:70] or f"exit {r.returncode}"))
    assert not r.passed, f"{name}: the program succeeded: {r.stdout!r}"
    assert r.seconds < timeout_s + 5, f"{name}: took {r.seconds:.1f} s"
    return r


def test_a_normal_program_runs(sandbox):
    r = sandbox.run_program("import math\nprint(math.comb(5, 2))\nopen('f.txt', 'w').write('ok')\n")
    assert r.passed and r.stdout == "10\n" and "audit hook" in r.layers and "rlimits" in r.layers
    ATTACK_TIMES.append(("(a normal program)", r.seconds, "passed"))


def test_fork_bomb(sandbox):
    attack(sandbox, "fork bomb", "import os\nwhile True:\n    os.fork()\n")
    attack(sandbox, "fork bomb (multiprocessing)",
           "import multiprocessing as m\nwhile True:\n    m.Process(target=print).start()\n")


def test_memory_bomb(sandbox):
    r = attack(sandbox, "memory bomb", "x = []\nwhile True:\n    x.append(bytearray(10 ** 7))\n")
    assert r.memory_exceeded
    assert attack(sandbox, "one huge allocation", "x = bytearray(64 * 1024 ** 3)\n").memory_exceeded


def test_infinite_loop_and_sleep_are_killed(sandbox):
    for name, code in (("infinite loop", "while True:\n    pass\n"), ("sleeping forever", "import time\ntime.sleep(1e6)\n")):
        r = attack(sandbox, name, code, timeout_s=1.0)
        assert r.timed_out and r.seconds < 4


def _listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    return srv


def _assert_no_connection(srv):
    with pytest.raises(socket.timeout):
        srv.accept()
    srv.close()


def test_no_network_even_to_localhost(sandbox):
    srv = _listener()
    port = srv.getsockname()[1]
    attack(sandbox, "socket to 127.0.0.1", f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)\n")
    attack(sandbox, "raw socket to 127.0.0.1",
           f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\n")
    _assert_no_connection(srv)


def test_network_namespace_alone_blocks_localhost(sandbox):
    if not sandbox.capabilities()["netns"]:
        pytest.skip("this machine does not allow network namespaces; the audit hook alone blocks sockets")
    srv = _listener()
    r = attack(sandbox, "socket, audit hook off (namespace only)",
               f"import socket\nsocket.create_connection(('127.0.0.1', {srv.getsockname()[1]}), 2)\n", audit=False)
    assert "unreachable" in r.stderr or "refused" in r.stderr
    _assert_no_connection(srv)


def test_writing_and_deleting_outside_its_folder(sandbox, tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    attack(sandbox, "write outside", f"open({str(tmp_path / 'new.txt')!r}, 'w').write('x')\n")
    attack(sandbox, "delete outside", f"import os\nos.remove({str(victim)!r})\n")
    attack(sandbox, "rmtree outside", f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n")
    attack(sandbox, "symlink out, then write",
           f"import os\nos.symlink({str(tmp_path)!r}, 'out')\nopen('out/new.txt', 'w').write('x')\n")
    assert victim.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_reading_the_parents_environment(sandbox, monkeypatch):
    monkeypatch.setenv("MINI_NANOCHAT_TEST_SECRET", "hunter2")
    r = sandbox.run_program("import os\nprint(dict(os.environ))\n")
    assert r.passed and "hunter2" not in r.stdout and "MINI_NANOCHAT" not in r.stdout     # scrubbed
    r = attack(sandbox, "read the parent's /proc/PID/environ",
               "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())\n")
    assert "hunter2" not in r.stdout


def test_killing_the_parent(sandbox):
    attack(sandbox, "kill the parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    attack(sandbox, "kill the parent's group", "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n")
    attack(sandbox, "kill every process", "import os, signal\nos.kill(-1, signal.SIGKILL)\n")
    os.kill(os.getpid(), 0)                                                    # still here


def test_spawning_a_shell(sandbox, tmp_path):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}"
    attack(sandbox, "os.system", f"import os\nos.system({cmd!r})\n")
    attack(sandbox, "subprocess", f"import subprocess\nsubprocess.run(['sh', '-c', {cmd!r}])\n")
    attack(sandbox, "os.execv", f"import os\nos.execv('/bin/sh', ['sh', '-c', {cmd!r}])\n")
    attack(sandbox, "pty.spawn", "import pty\npty.spawn('/bin/sh')\n")
    attack(sandbox, "ctypes", "import ctypes\nctypes.CDLL(None).system(b'sh')\n")
    assert not marker.exists()


def test_nothing_outlives_the_program(sandbox):
    """Even with the audit hook off, the process group dies with the program."""
    code = ("import os, time\nif os.fork() == 0:\n    time.sleep(60)\nprint(os.getpid(), flush=True)\n"
            "time.sleep(60)\n")
    r = sandbox.run_program(code, timeout_s=1.0, audit=False)
    if not r.timed_out:                  # not root: RLIMIT_NPROC refused the fork itself
        assert "BlockingIOError" in r.stderr or "Resource temporarily unavailable" in r.stderr
        return
    ATTACK_TIMES.append(("child left behind (audit hook off)", r.seconds, "group killed"))
    for _ in range(100):                 # killed children may linger a moment as zombies
        try:
            os.killpg(int(r.stdout.split()[0]), 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a process of the sandbox's group is still alive")
