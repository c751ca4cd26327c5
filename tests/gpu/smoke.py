"""GPU smoke run: the whole pipeline at a tiny size on CUDA, in a few minutes, with its figures.

    python tests/gpu/smoke.py                         # on a CUDA machine: bf16, torch.compile, NCCL
    python tests/gpu/smoke.py --out gpu_smoke.json    # where the figures go (also the last line printed)
    python tests/gpu/smoke.py --device cpu            # dry run of the plumbing on CPU (what CI tests)
    bash tests/gpu/smoke.sh                           # the same, as a shell command

Stages, each the real command (``python -m mini_nanochat …``) in a private base folder:
tokenizer (embedded corpus) -> pretraining under torchrun (2 ranks if 2 GPUs are visible, else
1; NCCL on CUDA, gloo on CPU), bf16 + ``--compile`` on CUDA -> base evaluation -> SFT and RL
(same ranks) -> the Phase 6 engine in this process (decode tok/s at batch 1 and 8, MBU) -> the
Phase 9 server (one chat completion over HTTP). The JSON holds the pretraining tok/s and MFU (from
the run's metrics.jsonl, Phase 2's reader; steps with compilation left out), decode tok/s and MBU
(bytes a decode step reads / time per step / this device's copy bandwidth, measured here), the
server's latency, and each stage's seconds.

Without CUDA it refuses (exit 2) unless ``--device cpu``: the CPU run proves the plumbing, and its
figures say nothing about a GPU. What it leaves out: fp8, FlashAttention-3, several nodes.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.common.console import UserError, run_command  # noqa: E402
from phases.phase2_training.load import load_model  # noqa: E402
from phases.phase2_training.metrics import read_metrics  # noqa: E402
from phases.phase6_inference.engine import Engine  # noqa: E402

SIZES = {  # per device: a model big enough for a GPU's figures to mean something, tiny on CPU
    "cuda": dict(depth=6, sequence_len=1024, device_batch_size=16, steps=60, vocab=8192),
    "cpu": dict(depth=2, sequence_len=128, device_batch_size=4, steps=6, vocab=512),
}


def log(msg: str) -> None:
    print(f"[smoke] {msg}", file=sys.stderr, flush=True)


def device_bandwidth(device: torch.device, mib: int) -> float:
    """Bytes/s of a large on-device tensor copy (read + write), best of 5: the ceiling of MBU."""
    src = torch.ones(mib * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(6):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dst.copy_(src)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best


class Pipeline:
    def __init__(self, args, base: Path):
        self.args, self.base, self.stages = args, base, {}
        self.cuda = args.device == "cuda"
        self.size = SIZES["cuda" if self.cuda else "cpu"]
        self.nproc = args.nproc or (min(2, torch.cuda.device_count()) if self.cuda else 1)
        self.env = {**os.environ, "MINI_NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": "1",
                    "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if self.cuda:
            self.env["MINI_NANOCHAT_DTYPE"] = "bfloat16"

    def cli(self, *argv: str, ranks: int = 1, timeout: float = 600) -> None:
        """One stage: ``python -m mini_nanochat ARGV``; the training stages under torchrun (even 1 rank)."""
        launch = [sys.executable, "-m", "mini_nanochat"]
        if argv[0] in ("pretrain", "sft", "rl"):
            launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
                      "-m", "mini_nanochat"]
        command = [*launch, "--no-progress", *argv]
        log("$ " + " ".join(command[1:]))
        t0 = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, env=self.env, timeout=timeout, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise RuntimeError(f"stage failed (exit {done.returncode}): {' '.join(argv)}")
        self.stages[" ".join(a for a in argv[:2] if not a.startswith("-"))] = round(time.perf_counter() - t0, 2)

    def train_args(self, run: str) -> list[str]:
        s = self.size
        return ["--run-name", run, "--device", self.args.device, "--device-batch-size", str(s["device_batch_size"]),
                "--total-batch-size", str(s["device_batch_size"] * s["sequence_len"] * self.nproc),
                "--save-every", "0", "--eval-every", "0"] + (["--compile"] if self.cuda else [])

    def pretraining(self) -> dict:
        s = self.size
        self.cli("tokenizer", "train", "--vocab-size", str(s["vocab"]))
        self.cli("pretrain", "--config", "examples/cpu_demo.toml", *self.train_args("smoke"),
                 "--depth", str(s["depth"]), "--num-iterations", str(s["steps"]),
                 "--set", f"sequence_len={s['sequence_len']}", "--set", "eval_tokens=16384",
                 "--set", "sample_tokens=8", ranks=self.nproc)
        steps = [r for r in read_metrics(self.base / "runs" / "smoke") if r.get("tok_per_s")]
        steady = steps[len(steps) // 3:] or steps          # the first steps compile and warm up
        return {"steps": len(steps), "tok_per_s": statistics.median(r["tok_per_s"] for r in steady),
                "mfu": statistics.median(r["mfu"] for r in steady), "ranks": self.nproc,
                "final_loss": steps[-1]["loss"]}

    def later_stages(self) -> None:
        self.cli("eval", "base", "smoke", "--device", self.args.device, "--max-per-task", "8", "--source", "corpus")
        self.cli("sft", "--config", "examples/cpu_sft.toml", "--base", "smoke", *self.train_args("smoke_sft"),
                 "--num-iterations", "4", "--mixture", "arithmetic:200, identity:20",
                 "--set", "eval_tasks=arithmetic:4", "--set", "val_per_task=4", "--set", "eval_tokens=8192",
                 ranks=self.nproc)
        self.cli("rl", "--config", "examples/cpu_rl.toml", "--sft", "smoke_sft", "--run-name", "smoke_rl",
                 "--device", self.args.device, "--num-iterations", "2", "--save-every", "0", "--eval-every", "0",
                 "--set", f"examples_per_step={2 * self.nproc}", "--set", "num_samples=2",
                 "--set", "max_new_tokens=16", "--set", "eval_task=arithmetic:4", "--set", "pass_k=2",
                 ranks=self.nproc)

    def decoding(self) -> dict:
        device = torch.device(self.args.device)
        dtype = torch.bfloat16 if self.cuda else torch.float32
        model, tok, _ = load_model(self.base / "runs" / "smoke_rl", device=device, dtype=dtype)
        engine = Engine(model, tok, stop_tokens=())       # no early stop: every row decodes every step
        prompt = tok.encode("The meaning of", prepend="<|bos|>")
        steps = 64 if self.cuda else 12
        bandwidth = device_bandwidth(device, 1024 if self.cuda else 64)
        weights = sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
                      if isinstance(m, torch.nn.Linear))
        out = {"bandwidth_GBps": round(bandwidth / 1e9, 1), "dtype": str(dtype).removeprefix("torch.")}
        for batch in (1, 8):
            medians = []
            for attempt in range(4):                     # the first pass warms up kernels and the allocator
                times, last = [], None
                for _ in engine.generate(prompt, num_samples=batch, max_tokens=steps + 1, temperature=0.0,
                                         use_tools=False):
                    if self.cuda:
                        torch.cuda.synchronize()
                    now = time.perf_counter()
                    if last is not None:
                        times.append(now - last)
                    last = now
                assert len(times) == steps, f"decoded {len(times)} steps, expected {steps}"
                if attempt:
                    medians.append(statistics.median(times))
            tpot = min(medians)                          # the least disturbed pass (bench_inference's rule)
            kv = batch * model.kv_bytes_per_token(dtype) * (len(prompt) + steps / 2)
            out[f"decode_tok_s_b{batch}"] = round(batch / tpot, 1)
            out[f"mbu_b{batch}"] = round((weights + kv) / tpot / bandwidth, 4)
        return out

    def serving(self) -> dict:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [sys.executable, "-m", "mini_nanochat", "serve", "--run", "smoke_rl", "--port", str(port),
                   "--device", self.args.device, "--quiet"]
        log("$ " + " ".join(command[1:]))
        t0 = time.perf_counter()
        server = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                if server.poll() is not None:
                    raise RuntimeError("the server exited: " + server.stderr.read().decode()[-2000:])
                try:
                    urllib.request.urlopen(url + "/health", timeout=2).read()
                    break
                except OSError:
                    if time.perf_counter() - t0 > 180:
                        raise RuntimeError("the server did not answer /health within 180 s") from None
                    time.sleep(0.5)
            started = time.perf_counter() - t0
            body = json.dumps({"messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 16,
                               "temperature": 0}).encode()
            request = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                             headers={"Content-Type": "application/json"})
            t1 = time.perf_counter()
            reply = json.loads(urllib.request.urlopen(request, timeout=120).read())
            latency = time.perf_counter() - t1
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        self.stages["serve"] = round(time.perf_counter() - t0, 2)
        return {"startup_s": round(started, 2), "chat_latency_s": round(latency, 3),
                "completion_tokens": reply["usage"]["completion_tokens"],
                "reply": reply["choices"][0]["message"]["content"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default; refused without a GPU) or cpu (a dry run of the plumbing)")
    parser.add_argument("--nproc", type=int, default=0, help="ranks (default: 2 if 2 GPUs are visible, else 1)")
    parser.add_argument("--out", default="gpu_smoke.json", help="the JSON of figures (default gpu_smoke.json)")
    parser.add_argument("--base-dir", default="", help="work folder (default: a temporary one, removed after)")


def run(args: argparse.Namespace) -> dict:
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("no CUDA device: this script measures a GPU. Run it on a CUDA machine, or use "
                            "--device cpu for a dry run of its plumbing (its figures say nothing about a GPU)")
        if torch.cuda.get_device_capability() < (8, 0):
            raise UserError(f"{torch.cuda.get_device_name()} has no bf16 tensor cores (compute capability < 8.0)")
        if args.nproc > torch.cuda.device_count():
            raise UserError(f"--nproc {args.nproc} but only {torch.cuda.device_count()} GPUs are visible")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mnc-smoke-") as tmp:
        base = Path(args.base_dir or tmp)
        pipe = Pipeline(args, base)
        result = {"device": args.device,
                  "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
                  "gpus_visible": torch.cuda.device_count() if args.device == "cuda" else 0,
                  "torch": torch.__version__, "size": pipe.size,
                  "backend": "nccl" if pipe.cuda else "gloo", "compile": pipe.cuda}
        result["pretrain"] = pipe.pretraining()
        pipe.later_stages()
        result["decode"] = pipe.decoding()
        result["server"] = pipe.serving()
        result["stages_s"] = pipe.stages
    result["total_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    log(f"figures written to {args.out}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    raise SystemExit(run_command(lambda: run(p.parse_args())))
