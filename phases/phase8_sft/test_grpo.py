"""Phase 8 checkpoint: GRPO / DAPO advantage and loss arithmetic on hand-made groups."""
from __future__ import annotations

import math

import pytest
import torch

pytestmark = pytest.mark.phase8


def test_advantage_is_reward_minus_group_mean(grpo):
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert grpo.advantages(r).tolist() == [[0.75, -0.25, -0.25, -0.25], [0.5, 0.5, -0.5, -0.5]]
    std = math.sqrt(0.1875)                                        # population std of [1, 0, 0, 0]
    assert grpo.advantages(r, "group", eps=0.0)[0].tolist() == pytest.approx([0.75 / std] + [-0.25 / std] * 3)
    all_std = r.std(unbiased=False).item()
    assert grpo.advantages(r, "batch", eps=0.0)[1].tolist() == pytest.approx([x / all_std for x in (.5, .5, -.5, -.5)])


def _logp(values):
    logp = torch.tensor(values, dtype=torch.float64).log().requires_grad_()
    return logp


@pytest.mark.parametrize("scale", ["none", "group", "batch"])
def test_a_group_with_equal_rewards_gives_no_gradient(grpo, scale):
    adv = grpo.advantages(torch.ones(1, 4), scale)[0]
    logp = _logp([[0.3, 0.6], [0.2, 0.5], [0.9, 0.1], [0.4, 0.4]])
    loss, _ = grpo.policy_loss(logp, torch.ones(4, 2), adv, ref_logp=None)
    loss.backward()
    assert torch.count_nonzero(logp.grad) == 0


def test_on_policy_loss_is_reinforce_with_token_normalisation(grpo):
    logp = _logp([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])                    # second completion: one sampled token
    adv = torch.tensor([1.0, -1.0])
    loss, st = grpo.policy_loss(logp, mask, adv)
    loss.backward()
    # d loss / d logp_t = -A_i / (number of supervised tokens in the batch) on supervised tokens
    assert logp.grad.flatten().tolist() == pytest.approx([-1 / 4] * 3 + [1 / 4, 0, 0])
    assert st.tokens == 4 and st.mean_ratio == 1.0 and st.clipped == 0.0


def test_sequence_normalisation_weighs_completions_equally(grpo):
    logp = _logp([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    loss, _ = grpo.policy_loss(logp, mask, torch.tensor([1.0, -1.0]), normalise="sequence")
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-1 / 6] * 3 + [1 / 2, 0, 0])


def test_ratio_clipping_stops_the_gradient_outside_the_trust_region(grpo):
    old = torch.tensor([[0.5, 0.5]], dtype=torch.float64).log()
    logp = _logp([[0.7, 0.55]])                                    # ratios 1.4 (clipped) and 1.1 (not)
    loss, st = grpo.policy_loss(logp, torch.ones(1, 2), torch.tensor([1.0]), old_logp=old, clip_eps=0.2)
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] == pytest.approx(-1.1 / 2)
    assert st.clipped == 0.5 and st.mean_ratio == pytest.approx(1.25)
    # with a negative advantage the clipped side is the other one: ratio 1.4 keeps its gradient
    logp2 = _logp([[0.7, 0.55]])
    loss2, _ = grpo.policy_loss(logp2, torch.ones(1, 2), torch.tensor([-1.0]), old_logp=old, clip_eps=0.2)
    loss2.backward()
    assert logp2.grad[0, 0] == pytest.approx(1.4 / 2)


def test_kl_penalty_is_zero_at_the_reference_and_positive_away(grpo):
    logp = _logp([[0.5, 0.25]])
    _, at_ref = grpo.policy_loss(logp, torch.ones(1, 2), torch.zeros(1), ref_logp=logp.detach(), beta=0.1)
    assert at_ref.kl == 0.0
    ref = torch.tensor([[0.25, 0.5]], dtype=torch.float64).log()
    loss, away = grpo.policy_loss(logp, torch.ones(1, 2), torch.zeros(1), ref_logp=ref, beta=0.1)
    d = ref - logp.detach()
    assert away.kl == pytest.approx(float((d.exp() - d - 1).mean())) and away.kl > 0
    assert loss.item() == pytest.approx(0.1 * away.kl)


def test_bad_switches_are_refused(grpo):
    with pytest.raises(ValueError):
        grpo.advantages(torch.ones(1, 2), "rank")
    with pytest.raises(ValueError):
        grpo.policy_loss(torch.zeros(1, 1), torch.ones(1, 1), torch.zeros(1), normalise="batch")
