"""ZeRO-2 inside the optimizer: each rank keeps optimizer state for its shard only.

With plain data parallelism every rank all-reduces the whole gradient, then runs the same
optimizer step on the same full state: W copies of identical work and memory. Here the
averaging and the update are split (nanochat's design, rebuilt on Phase 3's MuonAdamW):

1. **launch every reduction** (asynchronous): AdamW tensors under 1,024 elements (or whose
   first dimension does not divide by W) are all-reduced and updated on every rank; larger
   ones are *reduce-scattered* along dim 0, so rank r receives only rows r*n/W ... of the
   averaged gradient. A Muon group's K same-shape gradients are stacked, zero-padded to
   ceil(K/W)*W and reduce-scattered, so each rank owns ceil(K/W) whole matrices (Muon
   orthogonalises a whole matrix; a slice of one would be meaningless).
2. **group by group, in order**: wait for its reduction, update the owned shard with Phase
   3's own step functions (their optimizer state lives only for the shard), and launch an
   asynchronous *all-gather* of the new values; the next group's update overlaps it.
3. **wait for every gather** and copy the gathered Muon stacks back into the parameters.

``state_dict`` gathers the shards into exactly the layout of a single-process MuonAdamW
(a collective: every rank calls it); ``load_state_dict`` takes that layout and keeps this
rank's slice. A checkpoint therefore resumes under any world size, or with no ranks at all.
``comm`` counts the bytes handed to each kind of collective (the benchmark reads it).

What it leaves out: starting reductions during the backward pass (DDP's bucketing does
that), bf16 communication, ZeRO-3 (sharding the parameters themselves).

Run: ``torchrun --nproc_per_node=2 -m phases.phase4_ddp.zero`` checks a step against MuonAdamW.
"""
from __future__ import annotations

import math
from collections import defaultdict
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from phases.common.console import UserError
from phases.phase3_optimizers.adamw import adamw_group_step
from phases.phase3_optimizers.muon import MuonAdamW, muon_group_step

SMALL = 1024  # AdamW tensors with fewer elements are all-reduced whole: not worth a shard


def _sharded(p: torch.Tensor, world: int) -> bool:
    return world > 1 and p.numel() >= SMALL and p.shape[0] % world == 0


@dataclass
class CommCounter:
    """Bytes of the full (unsharded) tensors handed to each collective, summed over calls."""
    bytes: dict = field(default_factory=lambda: {"all_reduce": 0, "reduce_scatter": 0, "all_gather": 0})

    def add(self, kind: str, tensor: torch.Tensor) -> None:
        self.bytes[kind] += tensor.numel() * tensor.element_size()

    def total(self) -> int:
        return sum(self.bytes.values())


def avg_op():
    return dist.ReduceOp.AVG                          # gloo (torch >= 2.x) and NCCL both average


# torch 2.13 renamed the two tensor collectives (the old names still work, with a warning)
reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class ZeroMuonAdamW(MuonAdamW):
    """MuonAdamW whose state and update are sharded across the ranks of the process group."""

    def __init__(self, param_groups: list[dict], rank: int, world_size: int):
        super().__init__(param_groups)
        self.rank, self.world = rank, world_size       # told by the recipe (the Runtime), never guessed
        self.comm = CommCounter()
        self.shard_state: dict = defaultdict(dict)    # optimizer state of this rank's shards
        self.shards: dict[tuple[int, int], object] = {}
        for gi, group in enumerate(self.param_groups):
            if group["kind"] == "muon":
                K = len(group["params"])
                per = math.ceil(K / self.world)           # matrices per rank, padding included
                self.shards[gi, 0] = [torch.zeros_like(group["params"][0]) for _ in range(per)]
            else:
                for pi, p in enumerate(group["params"]):
                    if self.is_sharded(p):
                        rows = p.shape[0] // self.world
                        self.shards[gi, pi] = torch.zeros_like(p[:rows])

    def is_sharded(self, p: torch.Tensor) -> bool:
        """AdamW tensors big enough (and divisible along dim 0) get one slice per rank."""
        return _sharded(p, self.world)

    def owned(self, K: int) -> range:
        per = math.ceil(K / self.world)
        return range(self.rank * per, self.rank * per + per)   # indices >= K are padding

    # --8<-- [start:step]
    @torch.no_grad()
    def step(self, closure=None):
        if self.world == 1:
            return super().step(closure)               # one rank: exactly Phase 3's optimizer
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # 1. launch every reduction at once; none is waited for yet
        reductions = []
        for gi, group in enumerate(self.param_groups):
            if group["kind"] == "muon":
                params = group["params"]
                K, per = len(params), len(self.shards[gi, 0])
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
                stack = torch.stack(grads)                                          # (K, r, c)
                if per * self.world > K:
                    pad = stack.new_zeros((per * self.world - K, *stack.shape[1:]))   # (pad, r, c)
                    stack = torch.cat([stack, pad])                                 # (per*W, r, c)
                mine = stack.new_empty((per, *stack.shape[1:]))                     # (per, r, c)
                self.comm.add("reduce_scatter", stack)
                work = reduce_scatter(mine, stack, op=avg_op(), async_op=True)
                reductions.append((gi, None, work, mine, stack))
                continue
            for pi, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if (gi, pi) in self.shards:
                    mine = p.grad.new_empty(self.shards[gi, pi].shape)             # (rows/W, ...)
                    self.comm.add("reduce_scatter", p.grad)
                    work = reduce_scatter(mine, p.grad.contiguous(), op=avg_op(), async_op=True)
                else:
                    mine = p.grad
                    self.comm.add("all_reduce", p.grad)
                    work = dist.all_reduce(p.grad, op=avg_op(), async_op=True)     # in place
                reductions.append((gi, pi, work, mine, None))
        # 2. in order: wait, update the shard, launch its all-gather (overlaps the next update)
        gathers = []
        for gi, pi, work, mine, stack in reductions:
            work.wait()
            group = self.param_groups[gi]
            if pi is None:                                                          # a Muon stack
                params, shard = group["params"], self.shards[gi, 0]
                for slot, (q, g) in enumerate(zip(shard, mine.unbind(0))):
                    k = self.owned(len(params))[slot]
                    if k < len(params):
                        q.copy_(params[k])
                    else:
                        q.zero_()                                                   # padding: stays 0
                    q.grad = g                                                      # (r, c)
                muon_group_step({**group, "params": shard}, self.shard_state)
                new = torch.stack(shard).to(stack.dtype)                            # (per, r, c)
                self.comm.add("all_gather", stack)
                gathers.append((gi, stack, all_gather(stack, new, async_op=True)))
            elif (gi, pi) in self.shards:                                           # an AdamW slice
                p, q = group["params"][pi], self.shards[gi, pi]
                rows = q.shape[0]
                q.copy_(p[self.rank * rows:(self.rank + 1) * rows])
                q.grad = mine
                adamw_group_step({**group, "params": [q]}, self.shard_state)
                self.comm.add("all_gather", p)
                gathers.append((gi, None, all_gather(p.data, q, async_op=True)))
            else:                                                                   # small: replicated
                adamw_group_step({**group, "params": [group["params"][pi]]}, self.state)
        # 3. wait for the new values; Muon's come back as a stack to copy into the matrices
        for gi, stack, work in gathers:
            work.wait()
            if stack is not None:
                params = self.param_groups[gi]["params"]
                torch._foreach_copy_(params, list(stack[:len(params)].unbind(0)))
        for q in self._shard_tensors():
            q.grad = None
        return loss
    # --8<-- [end:step]

    def _shard_tensors(self):
        for v in self.shards.values():
            yield from (v if isinstance(v, list) else [v])

    def _index(self) -> dict[int, int]:
        """id(param) -> its number in state_dict()'s layout (params numbered across groups)."""
        ids, n = {}, 0
        for g in self.param_groups:
            for p in g["params"]:
                ids[id(p)] = n
                n += 1
        return ids

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        out = t.new_empty((t.shape[0] * self.world, *t.shape[1:]))                # (W*rows, ...)
        all_gather(out, t.contiguous())
        return out

    # --8<-- [start:state_dict]
    def state_dict(self) -> dict:
        """The single-process layout (a collective: every rank must call it)."""
        sd = super().state_dict()                      # hyperparameters + the replicated tensors' state
        if self.world == 1:
            return sd
        index = self._index()
        for (gi, pi), shard in self.shards.items():
            group = self.param_groups[gi]
            if group["kind"] == "muon":
                s, K = self.shard_state.get(shard[0], {}), len(group["params"])
                full = {k: self._gather(v)[:K] if torch.is_tensor(v) and v.dim() else v for k, v in s.items()}
                key = index[id(group["params"][0])]
            else:
                s = self.shard_state.get(shard, {})
                full = {k: self._gather(v) if torch.is_tensor(v) and v.dim() else v for k, v in s.items()}
                key = index[id(group["params"][pi])]
            if full:
                sd["state"][key] = full
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Any world size's checkpoint (they all share one layout): keep this rank's slice."""
        super().load_state_dict(state_dict)            # full state, keyed by the parameters
        if self.world == 1:
            return
        self.shard_state.clear()
        for (gi, pi), shard in self.shards.items():
            group = self.param_groups[gi]
            if group["kind"] == "muon":
                K, per = len(group["params"]), len(shard)
                full = self.state.pop(group["params"][0], {})
                lo = self.rank * per
                part = {}
                for k, v in full.items():
                    if torch.is_tensor(v) and v.dim():
                        v = torch.cat([v, v.new_zeros((per * self.world - K, *v.shape[1:]))])  # (per*W, ...)
                        v = v[lo:lo + per].clone()                                            # (per, ...)
                    part[k] = v
                if part:
                    self.shard_state[shard[0]] = part
            else:
                full = self.state.pop(group["params"][pi], {})
                rows = shard.shape[0]
                part = {k: v[self.rank * rows:(self.rank + 1) * rows].clone() if torch.is_tensor(v) and v.dim()
                        else v for k, v in full.items()}
                if part:
                    self.shard_state[shard] = part
    # --8<-- [end:state_dict]

    def state_bytes(self) -> int:
        """Bytes of optimizer state this rank holds (tensors only)."""
        stores = list(self.state.values()) + list(self.shard_state.values())
        return sum(v.numel() * v.element_size() for s in stores for v in s.values() if torch.is_tensor(v))


def state_bytes_per_rank(model: torch.nn.Module, kind: str = "muon", world: int = 1) -> dict:
    """Optimizer state one rank holds for ``model`` (no tensor is needed: a meta-device model works).

    ``kind = "adamw"``: 2 fp32 moments for every parameter; ``"muon"``: MuonAdamW (Phase 3) with
    one fp32 momentum per block matrix plus NorMuon's max(rows, cols) fp32 second moment, AdamW
    for the rest. With ``world`` > 1 the state is sharded as ``ZeroMuonAdamW`` shards it: each
    Muon shape group by whole matrices (ceil(K / world) of K), big AdamW tensors by rows.
    """
    if kind not in ("adamw", "muon"):
        raise UserError(f"optimizer kind must be adamw or muon, got {kind!r}")
    muon = [p for p in model.blocks.parameters() if p.ndim == 2] if kind == "muon" else []
    ids, groups = {id(p) for p in muon}, {}
    for p in muon:
        groups[tuple(p.shape)] = groups.get(tuple(p.shape), 0) + 1
    adamw = sum(8 * (p.numel() // world if _sharded(p, world) else p.numel())
                for p in model.parameters() if id(p) not in ids)
    momentum = sum(4 * r * c * math.ceil(k / world) for (r, c), k in groups.items())
    second = sum(4 * max(r, c) * math.ceil(k / world) for (r, c), k in groups.items())
    return dict(adamw_moments=adamw, muon_momentum=momentum, normuon_second_moment=second,
                total=adamw + momentum + second)


if __name__ == "__main__":
    from phases.phase4_ddp.dist import distributed, report_and_exit

    def main():
        with distributed(timeout_s=60) as world:
            torch.manual_seed(0)
            params = [torch.nn.Parameter(torch.randn(64, 32)) for _ in range(3)] + [torch.nn.Parameter(torch.randn(8))]
            groups = [{"kind": "muon", "params": params[:3], "lr": 0.02},
                      {"kind": "adamw", "params": params[3:], "lr": 0.01}]
            ref = [p.detach().clone().requires_grad_() for p in params]
            sharded = ZeroMuonAdamW(groups, world.rank, world.world_size)
            plain = MuonAdamW([{**groups[0], "params": ref[:3]}, {**groups[1], "params": ref[3:]}])
            for p, q in zip(params, ref):
                p.grad = torch.full_like(p, float(world.rank))     # ranks disagree; the mean is used
                q.grad = torch.full_like(q, (world.world_size - 1) / 2)
            sharded.step()
            plain.step()
            err = max((p - q).abs().max().item() for p, q in zip(params, ref))
            print(f"rank {world.rank}: max |ZeRO - MuonAdamW| after one step = {err:.2e}; "
                  f"state bytes here {sharded.state_bytes():,}", flush=True)

    sys.exit(report_and_exit(main))
