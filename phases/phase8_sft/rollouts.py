"""RL's data and model: sampled answers as a loader (``Rollouts``), a GPT whose loss is the policy gradient.

Phase 2's loop asks its loader for ``(inputs, targets)`` and its model for a loss. RL keeps
that loop and changes what the two are (``rl.py`` plugs them in through the recipe):

- ``Rollouts.next_batch`` returns one group of answers to one problem: when its queue is
  empty it samples every problem of the step at once with Phase 6's engine (one prefill per
  problem, copied to its ``num_samples`` rows), rewards each answer with the task's judge
  (``mixture.reward``), turns the rewards into advantages within each group
  (``grpo.advantages``) and queues one ``RolloutBatch`` per group. Its state (problems
  used, samples still to be reused) is saved with each checkpoint, so a resumed run draws
  the same problems and seeds.
- ``Policy(GPT)``: given a ``RolloutBatch`` as targets, ``forward`` returns
  ``grpo.policy_loss`` of the answers' log-probabilities; given ordinary targets, the
  cross-entropy (the val bpb of reference answers still works).

What it leaves out: a value function, asynchronous sampling (the step waits for its samples).

Run: through ``mini-nanochat rl`` (``rl.py``); ``pytest phases/phase8_sft/test_rl.py`` checks both.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from phases.common.console import UserError
from phases.phase0_tokenizer.chat import render_for_completion
from phases.phase1_transformer.model import GPT
from phases.phase8_sft import mixture as mixtures
from phases.phase8_sft.grpo import advantages, policy_loss, token_logprobs

STATE_VERSION = 1


@dataclass
class RolloutBatch:
    """One group's answers as training targets, with what the loss needs beside them."""
    targets: torch.Tensor                 # (N, T): sampled answer tokens; -1 elsewhere
    advantages: torch.Tensor              # (N,)
    old_logp: torch.Tensor | None = None  # (N, T): log-probs while sampling (several updates per batch)
    ref_logp: torch.Tensor | None = None  # (N, T): the reference model's (beta > 0)


# --8<-- [start:policy]
class Policy(GPT):
    """A GPT whose loss, when its targets are a ``RolloutBatch``, is the policy-gradient loss.

    The loop asks ``model(x, targets=y)`` for a loss to minimise; RL changes only what that
    loss is. The weights, checkpoints and generation are a GPT's.
    """
    loss_options: dict = {}
    temperature: float = 1.0          # the sampling temperature: the policy is softmax(logits / T)

    def forward(self, idx, targets=None, *args, **kwargs):
        if not isinstance(targets, RolloutBatch):
            return super().forward(idx, targets, *args, **kwargs)
        logp = token_logprobs(super().forward, idx, targets.targets, self.temperature)   # (N, T), 0 where -1
        loss, self.last_stats = policy_loss(logp, targets.targets >= 0, targets.advantages, targets.old_logp,
                                            targets.ref_logp, **self.loss_options)
        return loss
# --8<-- [end:policy]


def _seed(*parts: int) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:15], 16)


class Rollouts:
    """The RL loader: groups of sampled answers, one group per ``next_batch``.

    ``holder["model"]`` is the policy (set by ``make_model``, which the loop calls after
    ``make_data``); ``holder["ref"]`` the reference model when ``beta > 0``.
    """

    def __init__(self, task, tok, cfg, holder: dict, rank: int = 0, world_size: int = 1, device="cpu"):
        if cfg.examples_per_step % world_size:
            raise UserError(f"examples_per_step {cfg.examples_per_step} must be a multiple of the {world_size} ranks")
        self.task, self.tok, self.cfg, self.holder = task, tok, cfg, holder
        self.rank, self.world, self.device = rank, world_size, torch.device(device)
        self.per_rank = cfg.examples_per_step // world_size
        self.cursor = 0             # problems this rank has used: the next is cursor * world + rank
        self.block: list[dict] = []  # the current samples (kept for updates_per_batch steps)
        self.uses = 0               # steps the block has served
        self.queue: list[RolloutBatch] = []
        self.rewards: list[float] = []   # since the last evaluation (extra_eval reads and clears it)

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self) -> list[dict]:
        from phases.phase6_inference.engine import Engine
        cfg, model = self.cfg, self.holder["model"]
        numbers = [(self.cursor + i) * self.world + self.rank for i in range(self.per_rank)]
        self.cursor += self.per_rank
        picks = [n % len(self.task) for n in numbers]
        convs = [self.task[k] for k in picks]
        prompts = [render_for_completion(self.tok, c) for c in convs]
        was_training = model.training
        model.eval()
        try:
            outs = Engine(model, self.tok).generate_batch(
                prompts, num_samples=cfg.num_samples, max_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                top_k=cfg.top_k or None, seed=[_seed(cfg.seed, n) for n in numbers])
        finally:
            model.train(was_training)
        groups = []
        for p, (k, prompt) in enumerate(zip(picks, prompts)):
            mine = outs[p * cfg.num_samples:(p + 1) * cfg.num_samples]
            groups.append({"prompt": prompt, "tokens": [c.tokens for c in mine], "masks": [c.masks for c in mine],
                           "rewards": [mixtures.reward(self.task, k, c.text) for c in mine]})
        if cfg.updates_per_batch > 1:      # the sampling policy's log-probs, for the ratio of later updates
            for g in groups:
                x, batch = self._batch(g, torch.zeros(len(g["tokens"])))
                with torch.no_grad():
                    g["old_logp"] = token_logprobs(model, x, batch.targets, cfg.temperature).tolist()
        return groups

    def _batch(self, group: dict, adv: torch.Tensor) -> tuple[torch.Tensor, RolloutBatch]:
        """(N, T) inputs and the rollout targets of one group (right-padded)."""
        prompt, n = group["prompt"], len(group["tokens"])
        width = len(prompt) + max(len(t) for t in group["tokens"]) - 1
        bos = self.tok.encode_special("<|bos|>")
        x = torch.full((n, width), bos, dtype=torch.long)
        y = torch.full((n, width), -1, dtype=torch.long)
        for i, (toks, masks) in enumerate(zip(group["tokens"], group["masks"])):
            seq = prompt + toks
            x[i, :len(seq) - 1] = torch.tensor(seq[:-1])
            start = len(prompt) - 1                     # the first answer token is the target here
            for j, (t, m) in enumerate(zip(toks, masks)):
                if m:                                   # sampled: learned; forced tool output: not
                    y[i, start + j] = t
        x, y = x.to(self.device), y.to(self.device)
        old = torch.tensor(group["old_logp"], device=self.device) if "old_logp" in group else None
        ref = None
        if self.cfg.beta > 0:
            with torch.no_grad():
                ref = token_logprobs(self.holder["ref"], x, y, self.cfg.temperature)
        return x, RolloutBatch(y, adv.to(self.device), old, ref)

    def _refill(self) -> None:
        if not self.block or self.uses >= self.cfg.updates_per_batch:
            self.block, self.uses = self._sample(), 0
            self.rewards += [r for g in self.block for r in g["rewards"]]
        rewards = torch.tensor([g["rewards"] for g in self.block])          # (G, N)
        adv = advantages(rewards, self.cfg.scale_rewards)                    # (G, N)
        self.queue = [self._batch(g, a) for g, a in zip(self.block, adv)]
        self.uses += 1

    def next_batch(self) -> tuple[torch.Tensor, RolloutBatch]:
        if not self.queue:
            self._refill()
        return self.queue.pop(0)

    # -- exact resume --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        keep = self.block if self.uses < self.cfg.updates_per_batch else []   # samples still to be reused
        return {"version": STATE_VERSION, "kind": "rollouts", "cursor": self.cursor, "uses": self.uses,
                "block": keep, "rank": self.rank, "world_size": self.world}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "rollouts" or state.get("version") != STATE_VERSION:
            raise UserError("the checkpoint's data state was not saved by Phase 8's RL rollouts")
        if (state["rank"], state["world_size"]) != (self.rank, self.world):
            raise UserError(f"the checkpoint was saved by rank {state['rank']} of {state['world_size']}; "
                            "resume with the same number of ranks")
        self.cursor, self.block, self.uses, self.queue = state["cursor"], state["block"], state["uses"], []
