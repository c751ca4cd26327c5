"""Fixtures for Phase 7's checkpoint: the modules under test, toy models with logits you control, a tiny run.

Each module can be swapped for your own: ``--impl core=my_core.py`` (or ``--impl PATH`` for
core, the main module), ``--impl tasks=…``, ``--impl chat_eval=…``, ``--impl chat_tasks=…``,
``--impl sandbox=…``, ``--impl bpb=…``.
"""
from __future__ import annotations

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from conftest import impl_fixture  # the repository root conftest: registers the name for --impl

REPO = Path(__file__).resolve().parents[2]


core = impl_fixture("core", "phases.phase7_eval.core", main=True)


tasks = impl_fixture("tasks", "phases.phase7_eval.tasks")


chat_eval = impl_fixture("chat_eval", "phases.phase7_eval.chat_eval")


chat_tasks = impl_fixture("chat_tasks", "phases.phase7_eval.chat_tasks")


sandbox = impl_fixture("sandbox", "phases.phase7_eval.sandbox")


bpb = impl_fixture("bpb", "phases.phase7_eval.bpb")


class ByteTokenizer:
    """Token = byte + 1; token 0 is <|bos|>: prompts you can read off the ids."""
    bos_token_id = 0
    vocab_size = 257

    def encode(self, text, prepend=None):
        return ([prepend] if prepend is not None else []) + [b + 1 for b in text.encode()]

    def encode_batch(self, texts, prepend=None):
        return [self.encode(t, prepend) for t in texts]


class BigramModel(torch.nn.Module):
    """logits[t] = table[token t]: the next-token distribution depends only on the current token."""

    def __init__(self, table: torch.Tensor, sequence_len: int = 64):
        super().__init__()
        self.table = torch.nn.Parameter(table.float(), requires_grad=False)    # (V, V)
        self.config = type("Config", (), {"sequence_len": sequence_len})()
        self.calls = 0

    def forward(self, ids):
        self.calls += 1
        return self.table[ids]                                                 # (B, T, V)


@pytest.fixture
def byte_tok():
    return ByteTokenizer()


@pytest.fixture
def bigram():
    """``bigram({"a": {"b": 5.0}, ...}, sequence_len)``: logit 5 for b after a, 0 elsewhere."""
    def make(prefers: dict[str, dict[str, float]], sequence_len: int = 64) -> BigramModel:
        table = torch.zeros(257, 257)
        for prev, nexts in prefers.items():
            for nxt, logit in nexts.items():
                table[ord(prev) + 1, ord(nxt) + 1] = logit
        return BigramModel(table, sequence_len)
    return make


@pytest.fixture(scope="session")
def tiny_world(make_tiny_world):
    """A small corpus (a few stdlib modules) and a vocab-512 tokenizer trained on it."""
    return make_tiny_world("p7_world", ("json", "textwrap", "argparse", "difflib"), shard_chars=40_000)


@pytest.fixture(scope="session")
def tiny_run(tiny_world, tmp_path_factory):
    """A run pretrained for a few steps (Phase 5's pretraining: Muon, packed loader): {"run_dir", "val_bpb", "base"}."""
    from phases.phase5_data.pretrain import load_config, pretrain
    base = tmp_path_factory.mktemp("p7_base")
    old = os.environ.get("MINI_NANOCHAT_BASE_DIR")
    os.environ["MINI_NANOCHAT_BASE_DIR"] = str(base)
    try:
        cfg = load_config(None, dict(depth=2, aspect_ratio=32, head_dim=32, sequence_len=64, device_batch_size=4,
                                     num_iterations=16, warmup_steps=2, eval_every=8, eval_tokens=2048,
                                     save_every=0, sample_tokens=4, data_dir=tiny_world["data_dir"],
                                     tokenizer_dir=tiny_world["tokenizer_dir"], run_dir=str(base / "runs" / "tiny"),
                                     matrix_lr=0.02, embedding_lr=0.05, unembedding_lr=0.01),
                          )
        with open(os.devnull, "w") as sink:
            result = pretrain(cfg, show_progress=False, out=sink)
    finally:
        if old is None:
            os.environ.pop("MINI_NANOCHAT_BASE_DIR", None)
        else:
            os.environ["MINI_NANOCHAT_BASE_DIR"] = old
    return {"run_dir": Path(result.run_dir), "val_bpb": result.val_bpb, "base": base}


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    from phases.phase2_training.load import load_model
    return load_model(tiny_run["run_dir"])


def pytest_terminal_summary(terminalreporter):
    """The sandbox attack list with the time each attack took (when test_sandbox ran)."""
    module = sys.modules.get("test_sandbox") or sys.modules.get("phases.phase7_eval.test_sandbox")
    times = getattr(module, "ATTACK_TIMES", None)
    if not times:
        return
    terminalreporter.section("sandbox attack list")
    for name, seconds, outcome in times:
        terminalreporter.write_line(f"{name:42s} {seconds * 1000:7.0f} ms  {outcome}")


def run_module(args: list[str], base: Path, nproc: int = 0, timeout: float = 300):
    """Run ``python -m phases.phase7_eval.evaluate ARGS`` (under torchrun with ``nproc`` ranks)."""
    import subprocess
    env = {**os.environ, "MINI_NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"]
              if nproc else [sys.executable, "-m"])
    return subprocess.run(launch + ["phases.phase7_eval.evaluate", "--no-progress", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- a stand-in HTTP server for the download tests (test_bundle.py, test_hub.py) ---------------

class StandIn:
    """A tiny HTTP server: ``files`` maps a path to bytes; ``cut[path]`` = responses to break mid-body."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                stand_in.requests.append((self.path, rng))
                data = stand_in.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if stand_in.cut.get(self.path):
                    stand_in.cut[self.path] -= 1
                    self.wfile.write(body[:len(body) // 2])     # then hang up: a dropped connection
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    s = StandIn()
    yield s
    s.stop()
