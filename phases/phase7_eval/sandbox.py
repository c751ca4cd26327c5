"""Run untrusted Python (a model's HumanEval answer) so that it can only hurt itself.

Each program runs in a **fresh subprocess** (``python -I -S``: no user site, no environment
variables read, no current folder on ``sys.path``) in **its own temporary folder**, with a
**scrubbed environment** (``PATH``, ``HOME`` and ``TMPDIR`` pointing into that folder),
**stdin closed** and stdout/stderr going to size-limited files. Layers, outermost first:

1. **a new session** (its own process group): at the end, finished or not, the whole group is
   killed with SIGKILL, so nothing it started lives on; a **wall-clock timeout** ends it early;
2. **a different user** (``nobody``) when we are root and ``nobody`` can run this Python: the
   kernel then refuses its writes to our files and its signals to our processes;
3. **resource limits** set before any program code runs: address space (memory), CPU seconds,
   processes (no fork for a non-root user), file size, open files, no core dumps;
4. **no network**: a new user + network namespace (``unshare``), in which there is no
   interface but a down loopback, so even 127.0.0.1 is unreachable;
5. **an audit hook** (PEP 578), installed before the program and impossible to remove, that
   refuses process creation (fork, exec, spawn, system, Popen), signals to other processes,
   sockets, ctypes, writes/deletes outside the folder and reading other processes' ``/proc``.

Layer 5 is Python-level: it stops ordinary code and accidents, not a determined attacker
who finds a way around the interpreter (PEP 578 says as much). Layers 1-4 are the kernel's.
``capabilities()`` reports which layers this machine allows (a container may forbid
namespaces; a root-only Python install rules out ``nobody``); every ``Result`` lists the
layers that were active. nanochat's ``execute_code`` has layers 1 (without the group kill)
and 3, plus a list of ``os`` functions set to None; its docstring says it is not a sandbox.

Timeouts are sized for a slow 2-core machine: evalplus's 50 ms minimum halved pass rates on
slow CPUs, so the default is 10 s per program, and CPU seconds get 1 s more than that.

What it leaves out: seccomp filters, cgroups (memory and process counts for root), a
read-only view of the file system, Windows (the layers are POSIX).
Run: ``python -m phases.phase7_eval.sandbox`` prints the capabilities and runs one program.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534
OUTPUT_LIMIT = 64 * 1024            # bytes of stdout/stderr kept (from the end)


# --8<-- [start:guard]
# Runs in the child before the program: limits, namespaces, then the audit hook.
GUARD = r'''
import os, sys

def _setup(limits, netns):
    import resource
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    layers = ["rlimits"]
    if netns:
        import ctypes
        if ctypes.CDLL(None, use_errno=True).unshare(0x10000000 | 0x40000000) == 0:   # NEWUSER|NEWNET
            layers.append("network namespace")
        for m in [m for m in sys.modules if m.startswith(("ctypes", "_ctypes"))]:
            del sys.modules[m]                 # the program must import it again, and may not
    return layers

def _make_hook(root, realpath=os.path.realpath, fspath=os.fspath, PathLike=os.PathLike, pid=str(os.getpid()),
               isinstance=isinstance, str=str, bytes=bytes, PermissionError=PermissionError):
    refused = frozenset(("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "os.kill", "os.killpg", "signal.pthread_kill", "subprocess.Popen", "pty.spawn", "socket.__new__",
        "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname", "ctypes.dlopen",
        "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata", "resource.setrlimit", "resource.prlimit",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "os.chdir", "os.fchdir", "os.chroot",
        "webbrowser.open"))
    changes = frozenset(("os.remove", "os.rmdir", "os.rename", "os.link", "os.symlink", "os.truncate",
        "os.mkdir", "os.chmod", "os.chown", "os.utime", "os.chflags", "os.mkfifo", "os.mknod",
        "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copymode", "shutil.copystat"))
    no_import = frozenset(("ctypes", "_ctypes", "cffi", "_posixsubprocess"))

    def real(path):
        return realpath(path.decode(errors="replace") if isinstance(path, bytes) else fspath(path))

    def inside(path):
        if isinstance(path, int):
            return True                         # an already open descriptor
        p = real(path)
        return p == root or p.startswith(root + "/")

    def hook(event, args):
        if event in refused:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0].split(".")[0] in no_import:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                      (isinstance(flags, int) and flags & 0o1103 != 0)   # O_WRONLY|O_RDWR|O_CREAT|O_TRUNC
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing outside the sandbox folder ({path})")
            if not isinstance(path, int):
                parts = real(path).split("/")
                if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != pid:
                    raise PermissionError("sandbox: other processes are off limits")
        elif event in changes:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, PathLike))]
            if any(isinstance(a, int) for a in args[2:]) or not all(inside(a) for a in paths):
                raise PermissionError(f"sandbox: {event} outside the sandbox folder")
    return hook

_layers = _setup(LIMITS, NETNS)
if AUDIT:
    sys.addaudithook(_make_hook(os.path.realpath(os.getcwd())))   # from here on, for good
    _layers.append("audit hook")
with open(".layers", "w") as _f:
    _f.write(",".join(_layers))
with open("program.py") as _f:
    _code = compile(_f.read(), "program.py", "exec")
del _setup, _make_hook, _layers, _f
exec(_code, {"__name__": "__main__", "__builtins__": __builtins__})
'''
# --8<-- [end:guard]


@dataclass
class Result:
    passed: bool                       # exited with status 0 in time
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    layers: list[str] = field(default_factory=list)

    @property
    def error(self) -> str:
        """The last line of stderr (e.g. ``AssertionError``), '' when none."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    @property
    def memory_exceeded(self) -> bool:
        return "MemoryError" in self.stderr


@functools.lru_cache(maxsize=None)
def capabilities() -> dict:
    """Which kernel layers this machine allows: {"nobody": bool, "netns": bool}."""
    caps = {"nobody": False, "netns": True}
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        caps["nobody"] = _run("pass", 10.0, 256, caps | {"nobody": True}, probe=True).passed
    r = _run("pass", 10.0, 256, caps, probe=True)
    caps["netns"] = "network namespace" in r.layers
    return caps


def run_program(code: str, timeout_s: float = 10.0, memory_mb: int = 512, audit: bool = True) -> Result:
    """Run ``code`` with every layer this machine allows; see the module docstring.

    ``audit=False`` leaves out the audit hook, to see what the kernel's layers contain alone.
    """
    return _run(code, timeout_s, memory_mb, capabilities(), audit=audit)


def _limits(timeout_s: float, memory_mb: int, nobody: bool) -> dict:
    limits = {"RLIMIT_AS": memory_mb << 20, "RLIMIT_CPU": math.ceil(timeout_s) + 1, "RLIMIT_FSIZE": 16 << 20,
              "RLIMIT_NOFILE": 64, "RLIMIT_CORE": 0}
    if nobody or os.geteuid() != 0:        # root ignores RLIMIT_NPROC; others get no new processes
        limits["RLIMIT_NPROC"] = 0
    return limits


def _run(code: str, timeout_s: float, memory_mb: int, caps: dict, probe: bool = False,
         audit: bool = True) -> Result:
    folder = Path(tempfile.mkdtemp(prefix="mini-nanochat-sandbox-"))
    t0 = time.perf_counter()
    try:
        (folder / "program.py").write_text(code)
        limits = _limits(timeout_s, memory_mb, caps["nobody"])
        guard = f"LIMITS = {limits!r}\nNETNS = {caps['netns']!r}\nAUDIT = {audit!r}\n" + GUARD
        user = {}
        if caps["nobody"]:
            os.chown(folder, NOBODY, NOBODY)
            os.chown(folder / "program.py", NOBODY, NOBODY)
            user = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
        env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "TMPDIR": str(folder), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1"}
        with open(folder / ".stdout", "w+b") as out, open(folder / ".stderr", "w+b") as err:
            try:
                proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", guard], cwd=folder, env=env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True, **user)
            except OSError as e:           # e.g. `nobody` may not run this interpreter
                if probe:
                    return Result(False, None, "", str(e), False, 0.0)
                raise
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)    # the whole group, finished or not
                proc.wait()
            stdout, stderr = (_tail(f) for f in (out, err))
        layers = ["process group", "timeout"] + (["user nobody"] if caps["nobody"] else [])
        marker = folder / ".layers"
        layers += marker.read_text().split(",") if marker.is_file() else []
        return Result(proc.returncode == 0 and not timed_out, proc.returncode, stdout, stderr, timed_out,
                      time.perf_counter() - t0, layers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tail(f) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - OUTPUT_LIMIT))
    return f.read().decode("utf-8", errors="replace")


if __name__ == "__main__":
    print("capabilities:", capabilities())
    r = run_program("import math\nprint(math.factorial(20))\nassert sum(range(10)) == 45\n")
    print(f"passed={r.passed} in {r.seconds * 1000:.0f} ms, layers: {', '.join(r.layers)}; stdout {r.stdout!r}")
