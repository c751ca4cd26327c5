"""Processes that train together: torchrun's environment, the process group, and the loop's hooks.

``torchrun --nproc_per_node=N`` starts N copies of the same program and tells each who it
is through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``). ``distributed()`` reads them, joins the process group
(NCCL on CUDA, **gloo on CPU**, so every path here runs on a laptop), pins each rank to
``cuda:<LOCAL_RANK>``, and on every way out (return, exception, Ctrl-C) tears the group
down. Without those variables it is a plain single process: rank 0 of 1, no group.

``DistRuntime`` is Phase 2's ``Runtime`` with real collectives: wrapping in
``DistributedDataParallel`` (when ``grad_sync = "ddp"``), ``no_sync`` during gradient
accumulation, sums and maxima across ranks, barriers.

**Faults.** Every collective has a timeout (``dist_timeout`` seconds): a rank waiting for a
peer that died or hangs raises instead of waiting forever. The rank that fails first prints
``[rank r] error: ...`` and exits non-zero; torchrun then stops the others. A collective
error on a rank that did nothing wrong says so ("a peer probably failed first"), so the
first ``[rank r] error`` line in the log is the cause. ``MINI_NANOCHAT_FAULT`` injects a
fault on purpose (a drill; see the README): ``rank=1,step=3,kind=hang|kill|raise``.

What it leaves out: elastic restarts (torchrun's ``--max-restarts``), several process groups
(tensor/pipeline parallelism), hierarchical (intra-/inter-node) collectives.

Run: ``torchrun --nproc_per_node=2 -m phases.phase4_ddp.dist`` prints what each rank sees.
"""
from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass

import torch
import torch.distributed as dist

from phases.common.console import UserError, run_command
from phases.phase1_transformer.config import resolve_device
from phases.phase2_training.recipe import Runtime

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str = ""                 # "" = no process group (one process)

    @property
    def is_master(self) -> bool:
        return self.rank == 0


# --8<-- [start:from_env]
def world_from_env(device: str = "") -> World:
    """Who am I? torchrun's variables -> rank, local rank, world size, device and backend."""
    present = [v for v in TORCHRUN_VARS if v in os.environ]
    if not present:
        return World(device=resolve_device(device))
    if len(present) < len(TORCHRUN_VARS):
        raise UserError(f"found {', '.join(present)} but not all of {', '.join(TORCHRUN_VARS)} in the "
                        "environment; launch with torchrun (or set all three)")
    try:
        rank, local, world = (int(os.environ[v]) for v in TORCHRUN_VARS)
    except ValueError:
        raise UserError(f"{', '.join(f'{v}={os.environ[v]!r}' for v in TORCHRUN_VARS)}: each must be a whole "
                        "number; launch with torchrun") from None
    if not (0 <= rank < world and 0 <= local):
        raise UserError(f"RANK {rank} is not in [0, WORLD_SIZE {world}); launch with torchrun")
    if device and not device.startswith("cuda"):
        resolve_device(device)                             # a clear error for a device that does not exist
    want_cuda = device.startswith("cuda") if device else torch.cuda.is_available()
    if want_cuda:
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r} asked for, but CUDA is not available")
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs are visible; "
                            "use --nproc_per_node <= the number of GPUs")
        return World(rank, local, world, torch.device("cuda", local), "nccl")  # one GPU per rank
    return World(rank, local, world, torch.device(device or "cpu"), "gloo")
# --8<-- [end:from_env]


def _say_error(world: World, e: BaseException) -> bool:
    """One line that says which rank failed and whether it was the cause or a victim (returned)."""
    victim = isinstance(e, (dist.DistError, RuntimeError)) and any(
        w in str(e) for w in ("Connection closed", "Connection reset", "Timed out", "timeout", "timed out",
                              "peer", "Gloo", "NCCL", "Broken pipe"))
    why = (" (a collective failed: a peer probably failed first or hangs; the first '[rank r] error' "
           "line is the cause)" if victim else "")
    print(f"[rank {world.rank}] error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{why}",
          file=sys.stderr, flush=True)
    return victim


# --8<-- [start:distributed]
@contextlib.contextmanager
def distributed(device: str = "", timeout_s: float = 300.0):
    """Join torchrun's process group for the duration of the block; leave it on every exit path."""
    world = world_from_env(device)
    if not world.backend:
        yield world                                        # one process: nothing to set up
        return
    if dist.is_initialized():
        # An outer block (the pipeline) already joined: reuse its group. Joining again in the
        # same torchrun launch would reuse the store keys of the group before it, and a slow
        # peer could read a stale address.
        if dist.get_backend() != world.backend:
            raise UserError(f"the process group is {dist.get_backend()}, but this stage needs "
                            f"{world.backend}: use one device type for every stage")
        dist.barrier()
        yield world
        return
    # Imported after the group exists, torch._dynamo (model building and torch.compile import it)
    # keeps a reference to it: the group's threads outlive destroy_process_group, and now and then
    # the exit aborts ("terminate called without an active exception"; ADR). Imported first, it
    # keeps none.
    import torch._dynamo  # noqa: F401
    if world.device.type == "cuda":
        torch.cuda.set_device(world.device)                # before NCCL: it binds to the current GPU
    kwargs = {"device_id": world.device} if world.backend == "nccl" else {}
    timeout = datetime.timedelta(seconds=timeout_s)        # no collective waits longer than this
    dist.init_process_group(world.backend, timeout=timeout, **kwargs)
    try:
        dist.barrier()                                     # everyone is here before anyone starts
        yield world
    except BaseException as e:
        if _say_error(world, e):
            raise SystemExit(1) from None   # a victim: its line says it all; the cause's traceback is elsewhere
        raise
    finally:
        # A failed NCCL group may not be destroyable cleanly; the process is exiting anyway.
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
# --8<-- [end:distributed]


class DistRuntime(Runtime):
    """Phase 2's loop hooks with real collectives; ``grad_sync`` picks who averages gradients."""

    def __init__(self, world: World, grad_sync: str = "zero"):
        super().__init__(world.rank, world.world_size)
        self.world, self.grad_sync = world, grad_sync
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None

    # --8<-- [start:ddp]
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world_size == 1 or self.grad_sync != "ddp":
            return model                                   # ZeRO: the optimizer averages the gradients
        ids = [self.world.device.index] if self.world.device.type == "cuda" else None
        # The only buffers (rotary tables) are computed, equal on every rank: no sync per forward.
        # (torch 2.13 renamed broadcast_buffers to forward_sync_buffers.)
        ddp_cls = torch.nn.parallel.DistributedDataParallel
        quiet = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp_cls).parameters
                 else {"broadcast_buffers": False})
        self.ddp = ddp_cls(model, device_ids=ids, **quiet)
        return self.ddp

    def sync_gradients(self, trained: torch.nn.Module, last_micro: bool):
        # Accumulating: keep each rank's gradient local; only the last backward all-reduces.
        if self.ddp is None or last_micro:
            return contextlib.nullcontext()
        return self.ddp.no_sync()
    # --8<-- [end:ddp]

    def _reduce(self, values: list[float], op) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.world.device)  # (n,)
        dist.all_reduce(t, op=op)
        return t.tolist()

    def sum(self, values: list[float]) -> list[float]:
        return self._reduce(list(values), dist.ReduceOp.SUM) if self.world_size > 1 else list(values)

    def max(self, value: float) -> float:
        return self._reduce([value], dist.ReduceOp.MAX)[0] if self.world_size > 1 else value

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def gather(self, obj) -> list:
        if self.world_size == 1:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)       # small JSON-able loader states, once per checkpoint
        return out


# --8<-- [start:fault]
def parse_fault(spec: str) -> dict:
    """``rank=1,step=3,kind=hang`` -> {"rank": 1, "step": 3, "kind": "hang"}."""
    try:
        fields = dict(item.split("=", 1) for item in spec.split(",") if item)
        fault = {"rank": int(fields["rank"]), "step": int(fields["step"]), "kind": fields["kind"]}
    except (KeyError, ValueError):
        raise UserError(f"MINI_NANOCHAT_FAULT={spec!r}: expected rank=R,step=S,kind=hang|kill|raise") from None
    if fault["kind"] not in ("hang", "kill", "raise"):
        raise UserError(f"MINI_NANOCHAT_FAULT: kind must be hang, kill or raise, got {fault['kind']!r}")
    return fault


class FaultyLoader:
    """A training stream that fails on purpose on one rank at one step: the fault drill."""

    def __init__(self, loader, fault: dict, rank: int, grad_accum: int):
        self.loader, self.fault, self.rank, self.grad_accum = loader, fault, rank, grad_accum
        self.micro = 0

    def next_batch(self):
        if self.rank == self.fault["rank"] and self.micro == self.fault["step"] * self.grad_accum:
            kind = self.fault["kind"]
            print(f"[rank {self.rank}] injecting a fault ({kind}) at step {self.fault['step']}",
                  file=sys.stderr, flush=True)
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)       # no exception, no cleanup: like an OOM kill
            if kind == "hang":
                while True:                                # a rank stuck forever, e.g. a deadlock
                    time.sleep(1)
            raise RuntimeError("injected fault")
        self.micro += 1
        return self.loader.next_batch()

    def state_dict(self) -> dict:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)
# --8<-- [end:fault]


def report_and_exit(fn) -> int:
    """Run ``fn``; a failure prints one line (and the traceback) and returns a non-zero status."""
    try:
        return run_command(fn)
    except Exception:                                      # a bug: keep the traceback, exit 1
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    def main():
        with distributed(timeout_s=30) as world:
            x = torch.tensor([float(world.rank)], device=world.device)
            if world.backend:
                dist.all_reduce(x)
            print(f"rank {world.rank}/{world.world_size} local {world.local_rank} on {world.device} "
                  f"({world.backend or 'no process group'}): sum of ranks = {x.item():g}", flush=True)

    sys.exit(report_and_exit(main))
