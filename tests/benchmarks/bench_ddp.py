"""Benchmark: DDP vs ZeRO-2 — bytes communicated, optimizer state per rank, and step time.

1. **Analytic table** (a meta-device model: no memory, any size) for depths 4, 12 and 24
   (nanochat's GPU family: aspect 64, head_dim 128, vocab 32,768; MuonAdamW groups of
   Phase 3) and world sizes 1, 2 and 8: per optimizer step and per rank,
   - *payload*: bytes of the full tensors handed to collectives (fp32 gradients/params);
   - *wire*: what a ring algorithm sends per rank: all-reduce 2(W-1)/W x payload,
     reduce-scatter and all-gather (W-1)/W x payload each;
   - optimizer-state bytes held by each rank.
2. **Measured** at the demo's model (depth 4, T=256, 2,048 tokens/step, vocab 8,192, random
   tokens), 1 process vs 2 gloo processes (torchrun, one thread each): the bytes counted
   through hooks (a DDP comm hook on every bucket; ZeRO's own counter) and the state bytes
   of the real optimizer, checked against the analytic figures; and the mean step time.

Last line of output: one JSON object with ``comm_bytes_ddp``, ``comm_bytes_zero`` (wire
bytes per rank per step, measured, demo model, 2 ranks), ``state_bytes_per_rank_ddp``,
``state_bytes_per_rank_zero`` (the same run), the table, the step times and the settings.

Run: ``python tests/benchmarks/bench_ddp.py [--steps 8]``; ``--quick``: a depth-2 model, 2 steps.
What it leaves out: NCCL and GPUs (the analytic rows stand for them), overlap measurements.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.phase1_transformer.model import GPT  # noqa: E402
from phases.phase4_ddp import train as p4train  # noqa: E402
from phases.phase4_ddp.zero import SMALL  # noqa: E402

GPU_FAMILY = dict(aspect_ratio=64, head_dim=128, sequence_len=2048, window_pattern="SSSL")
DEMO = dict(depth=4, aspect_ratio=64, head_dim=64, sequence_len=256, device_batch_size=4, total_batch_size=2048,
            reference_batch_size=2048, weight_decay=0.0, num_iterations=100)
QUICK = dict(DEMO, depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, total_batch_size=256,
             reference_batch_size=256)


def groups_of(settings: dict, vocab: int, world: int = 1):
    """Phase 3's param groups of a meta-device model (shapes only)."""
    cfg = p4train.DistTrainConfig(**settings)
    plan = p4train.base_recipe().derive(cfg, vocab, world_size=world)
    with torch.device("meta"):
        model = GPT(plan.model)
    from phases.phase3_optimizers.train import param_groups
    return param_groups(model, plan.config, plan.scaling)


def analytic(groups, world: int, bytes_per: int = 4) -> dict:
    """Payload and ring wire bytes per rank per step, and optimizer-state bytes per rank."""
    W = world
    ddp_all_reduce = zero_all_reduce = zero_scatter_gather = 0     # payload bytes by kind of collective
    ddp_state = zero_state = 0
    for g in groups:
        if g["kind"] == "muon":
            K, (r, c) = len(g["params"]), g["params"][0].shape
            per = math.ceil(K / W)
            moment = r * c + (r if r >= c else c)              # momentum + NorMuon's factored 2nd moment
            ddp_all_reduce += K * r * c * bytes_per
            ddp_state += K * moment * bytes_per
            zero_scatter_gather += 2 * per * W * r * c * bytes_per   # reduce-scatter + all-gather, padded
            zero_state += (per if W > 1 else K) * moment * bytes_per
            continue
        for p in g["params"]:
            n = p.numel()
            ddp_all_reduce += n * bytes_per
            ddp_state += 2 * n * bytes_per                     # exp_avg + exp_avg_sq
            if W > 1 and n >= SMALL and p.shape[0] % W == 0:
                zero_scatter_gather += 2 * n * bytes_per
                zero_state += 2 * n // W * bytes_per
            else:
                zero_all_reduce += n * bytes_per               # all-reduced whole, updated everywhere
                zero_state += 2 * n * bytes_per
    if W == 1:                                                 # one rank: nothing is sent at all
        ddp_all_reduce = zero_all_reduce = zero_scatter_gather = 0
    ring = (W - 1) / W      # ring all-reduce = reduce-scatter + all-gather: 2(W-1)/W of the payload
    return {"ddp": {"payload": ddp_all_reduce, "wire": 2 * ring * ddp_all_reduce, "state": ddp_state},
            "zero": {"payload": zero_all_reduce + zero_scatter_gather, "state": zero_state,
                     "wire": 2 * ring * zero_all_reduce + ring * zero_scatter_gather}}


def worker(args) -> None:
    """Runs under torchrun (or alone): time steps and count bytes for one strategy."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from phases.phase4_ddp.dist import DistRuntime, distributed
    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else DEMO
    cfg = p4train.DistTrainConfig(**settings, grad_sync=args.strategy, dist_timeout=120)
    with distributed("cpu", 120) as world:
        runtime = DistRuntime(world, args.strategy)
        rec = p4train.recipe(runtime)
        plan = rec.derive(cfg, args.vocab)
        model = GPT.build(plan.model, device="cpu", seed=0)
        optimizer = rec.make_optimizer(model, plan.config, plan)
        trained = runtime.wrap(model)
        hooked = {"bytes": 0}
        if runtime.ddp is not None:
            def count(state, bucket):                      # every bucket DDP all-reduces passes here
                hooked["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
                return default_hooks.allreduce_hook(state, bucket)
            runtime.ddp.register_comm_hook(None, count)
        g = torch.Generator().manual_seed(world.rank)
        B, T = cfg.device_batch_size, cfg.sequence_len
        times = []
        for step in range(args.steps + 1):                 # step 0 warms up, not timed
            t0 = time.perf_counter()
            for micro in range(plan.grad_accum):
                x = torch.randint(0, args.vocab, (B, T + 1), generator=g)   # (B, T+1)
                with runtime.sync_gradients(trained, micro == plan.grad_accum - 1):
                    (trained(x[:, :-1], targets=x[:, 1:]) / plan.grad_accum).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dt = runtime.max(time.perf_counter() - t0)
            if step == 0:                                  # the bytes of one step, through the hooks
                first_bytes = hooked["bytes"] + (optimizer.comm.total() if hasattr(optimizer, "comm") else 0)
                first_comm = dict(optimizer.comm.bytes) if hasattr(optimizer, "comm") else None
            else:
                times.append(dt)
        if hasattr(optimizer, "state_bytes"):
            state = optimizer.state_bytes()
        else:
            state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                        if torch.is_tensor(v))
        if world.is_master:
            Path(args.out).write_text(json.dumps({
                "world": world.world_size, "strategy": args.strategy, "grad_accum": plan.grad_accum,
                "payload_bytes": first_bytes, "state_bytes": state, "step_s": sorted(times)[len(times) // 2],
                "zero_comm": first_comm}))
        if world.backend:
            dist.barrier()


def launch(nproc: int, strategy: str, args, threads: int = 1) -> dict:
    out = Path(tempfile.mkdtemp()) / "r.json"
    cmd = [str(Path(__file__).resolve()), "--worker", "--strategy", strategy, "--steps", str(args.steps),
           "--out", str(out), "--threads", str(threads), "--vocab", str(args.vocab)] + (["--quick"] if args.quick else [])
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *cmd]
    else:
        cmd = [sys.executable, *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore::FutureWarning"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        sys.exit(f"worker failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per run (after one warm-up step)")
    ap.add_argument("--quick", action="store_true", help="tiny model, 2 steps (the smoke test)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--strategy", default="zero", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--vocab", type=int, default=8192, help="vocabulary of the measured model")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.vocab = 2, 512
    if args.worker:
        return worker(args)

    table = []
    print("| depth | params | W | DDP wire MB/rank | ZeRO wire MB/rank | DDP state MB/rank | ZeRO state MB/rank |")
    print("|---|---|---|---|---|---|---|")
    for depth in (4, 12, 24):
        groups = groups_of({**GPU_FAMILY, "depth": depth}, 32768)
        n = sum(p.numel() for g in groups for p in g["params"])
        for W in (1, 2, 8):
            a = analytic(groups, W)
            table.append({"depth": depth, "params": n, "world": W, **{f"{s}_{k}": v for s in a for k, v in a[s].items()}})
            print(f"| {depth} | {n / 1e6:.1f}M | {W} | {a['ddp']['wire'] / 1e6:.1f} | {a['zero']['wire'] / 1e6:.1f} | "
                  f"{a['ddp']['state'] / 1e6:.1f} | {a['zero']['state'] / 1e6:.1f} |")

    settings = QUICK if args.quick else DEMO
    demo_groups = groups_of(settings, args.vocab)
    runs = {"1 process, 1 thread": launch(1, "zero", args)}
    if not args.quick:
        runs["1 process, 2 threads"] = launch(1, "zero", args, 2)
    runs["2 ranks ddp"], runs["2 ranks zero"] = launch(2, "ddp", args), launch(2, "zero", args)
    expect = analytic(demo_groups, 2)
    print("\n| run | accumulation | step s (median) | payload bytes/step (hooks) | analytic | state bytes/rank | analytic |")
    print("|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        a = expect[r["strategy"]] if r["world"] == 2 else analytic(demo_groups, 1)["zero"]
        print(f"| {name} | {r['grad_accum']} | {r['step_s']:.3f} | {r['payload_bytes']:,} | {a['payload']:,} | "
              f"{r['state_bytes']:,} | {a['state']:,} |")
    ring = 0.5                                             # (W-1)/W at W=2
    ddp, zero = runs["2 ranks ddp"], runs["2 ranks zero"]
    zc = zero["zero_comm"]
    comm_zero = 2 * ring * zc["all_reduce"] + ring * (zc["reduce_scatter"] + zc["all_gather"])
    result = {
        "comm_bytes_ddp": 2 * ring * ddp["payload_bytes"], "comm_bytes_zero": comm_zero,
        "state_bytes_per_rank_ddp": ddp["state_bytes"], "state_bytes_per_rank_zero": zero["state_bytes"],
        "measured_matches_analytic": all(r["payload_bytes"] == (expect[r["strategy"]]["payload"] if r["world"] == 2
                                                                else 0) for r in runs.values())
        and ddp["state_bytes"] == expect["ddp"]["state"] and zero["state_bytes"] == expect["zero"]["state"],
        "step_s": {k: r["step_s"] for k, r in runs.items()}, "runs": runs, "table": table,
        "settings": {**settings, "vocab": args.vocab, "steps": args.steps},
        "hardware": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
