"""Phase 2 checkpoint, step 4: bits per byte (evaluate.py)."""
from __future__ import annotations

import math

import pytest
import torch

pytestmark = pytest.mark.phase2


class _FixedLoss(torch.nn.Module):
    """A 'model' whose per-token loss is known: nats[b, t] = 0.5 * (t + 1)."""
    def forward(self, x, targets=None, loss_reduction="mean"):
        B, T = x.shape
        return 0.5 * torch.arange(1, T + 1, dtype=torch.float32).expand(B, T)

def test_bpb_by_hand(evaluate):
    token_bytes = torch.tensor([5, 1, 0, 3])            # id 2 is a special token: 0 bytes
    x = torch.zeros(1, 4, dtype=torch.long)
    y = torch.tensor([[1, 2, 3, -1]])                   # a special target and an ignored one
    # (the ignored target must be masked itself: read as id 0 it would add 5 bytes, as id -1 3)
    bpb, nats, nbytes = evaluate.evaluate_bpb(_FixedLoss(), [(x, y)], token_bytes)
    # counted: t=0 (id 1, 1 byte, 0.5 nats) and t=2 (id 3, 3 bytes, 1.5 nats)
    assert nbytes == 4 and math.isclose(nats, 2.0)
    assert math.isclose(bpb, 2.0 / (math.log(2) * 4))
