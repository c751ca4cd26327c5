"""Phase 8 checkpoint: RL on Phase 2's loop (rollout targets, the policy loss, reward goes up, exact resume)."""
from __future__ import annotations

import json

import pytest
import torch

from phases.phase7_eval.tasks import Task

pytestmark = pytest.mark.phase8


class Spaces(Task):
    """A toy task: the reward is 1 when the answer starts with a space (a word), else 0."""
    name, kind = "spaces", "generative"

    def get_example(self, index: int) -> dict:
        return {"messages": [{"role": "user", "content": f"Write one word, number {index}."},
                             {"role": "assistant", "content": " word"}]}

    def evaluate(self, conversation: dict, completion: str) -> bool:
        return completion.startswith(" ")


def _cfg(rl, tiny_base, tmp_path, **changes):
    overrides = dict(sft=tiny_base["base"], num_iterations=16, examples_per_step=4, num_samples=8, max_new_tokens=1,
                     eval_every=4, save_every=0, pass_k=2, init_lr_frac=1.0, run_dir=str(tmp_path / "rl"),
                     sample_tokens=2)
    overrides.update(changes)
    return rl.load_config(None, overrides)


def _rewards(run_dir) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["reward"] for r in records if r.get("event") == "eval" and "reward" in r]


def test_rl_raises_the_reward_on_a_toy_task(rl, tiny_base, tmp_path):
    recipe = rl.recipe(task=Spaces(list(range(64))), evals=[])
    from phases.phase4_ddp import recipe as p4
    result = p4.train(_cfg(rl, tiny_base, tmp_path), show_progress=False, base=recipe)
    rewards = _rewards(result.run_dir)                   # the mean reward of each 4 steps of sampling
    assert len(rewards) == 4 and rewards[-1] > max(0.9, rewards[0] + 0.15), rewards
    from phases.phase2_training.load import read_meta
    assert read_meta(result.run_dir)["stage"] == "rl"


def test_rl_resume_is_bitwise_exact_with_reused_samples_and_a_reference(rl, tiny_base, tmp_path,
                                                                          assert_resume_exact):
    from phases.phase4_ddp import recipe as p4

    def train(cfg, resume=False, show_progress=False):
        return p4.train(cfg, resume=resume, show_progress=show_progress,
                        base=rl.recipe(task=Spaces(list(range(64))), evals=[]))

    cfg = _cfg(rl, tiny_base, tmp_path, num_iterations=6, eval_every=3, save_every=3, max_new_tokens=3,
               updates_per_batch=2, beta=0.05)
    saved = assert_resume_exact(train, cfg, stop_after=3)          # mid-block: samples still to be reused
    state = saved.meta["data_state"]
    assert state["kind"] == "rollouts" and state["uses"] == 1 and len(state["block"]) == 4


def test_rollout_targets_are_only_the_sampled_answer_tokens(rl, chat_tok):
    cfg = rl.RLConfig(num_samples=2, examples_per_step=1)
    loader = rl.Rollouts(Spaces([0]), chat_tok, cfg, {})
    group = {"prompt": [1, 2, 3], "tokens": [[10, 11, 12, 13], [20, 21]], "masks": [[1, 0, 0, 1], [1, 1]],
             "logprobs": None, "rewards": [1.0, 0.0]}
    x, batch = loader._batch(group, torch.tensor([0.5, -0.5]))
    bos = chat_tok.encode_special("<|bos|>")
    assert x.tolist() == [[1, 2, 3, 10, 11, 12], [1, 2, 3, 20, bos, bos]]
    # position t predicts token t+1: the prompt's last position predicts the first answer token
    assert batch.targets.tolist() == [[-1, -1, 10, -1, -1, 13], [-1, -1, 20, 21, -1, -1]]
    assert batch.advantages.tolist() == [0.5, -0.5]


def test_policy_is_a_gpt_with_another_loss(rl, tiny_base):
    from phases.phase2_training.load import load_model
    gpt, _, _ = load_model(tiny_base["base"])
    policy = rl.Policy.build(gpt.config)
    policy.load_state_dict(gpt.state_dict())
    x = torch.randint(0, 500, (2, 9))
    y = torch.randint(0, 500, (2, 9))
    assert torch.equal(policy(x, targets=y), gpt(x, targets=y))       # ordinary targets: cross-entropy
    y[:, :4] = -1
    batch = rl.RolloutBatch(y, torch.tensor([1.0, -1.0]))
    policy(x, targets=batch).backward()
    logp = -gpt(x, targets=y, loss_reduction="none")                  # (2, 9), 0 where y is -1
    reinforce = -(logp[0].sum() - logp[1].sum()) / 10                 # sum A log p / all 10 sampled tokens
    reinforce.backward()
    for (name, p), q in zip(policy.named_parameters(), gpt.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name       # on-policy: the same gradient


def test_bad_switches_are_user_errors(rl, tiny_base, tmp_path):
    from phases.common.console import UserError
    for change in ({"scale_rewards": "rank"}, {"num_samples": 1}, {"examples_per_step": 0}):
        with pytest.raises(UserError):
            rl.rl(_cfg(rl, tiny_base, tmp_path, **change), show_progress=False)
