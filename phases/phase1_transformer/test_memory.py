"""Phase 1 checkpoint: training memory measured on the meta device (memory.py), exact against a real run.

Models are built on the meta device, so even large configs cost no memory; the one real forward
pass uses a tiny config on the CPU.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from phases.phase1_transformer import memory
from phases.phase1_transformer.config import GPTConfig, preset
from phases.phase1_transformer.model import GPT

pytestmark = pytest.mark.phase1


def tiny(**kw) -> GPTConfig:
    """Every feature on: GQA, short windows (S = 128 < T = 256), value embeddings, smear, backout."""
    args = dict(vocab_size=320, sequence_len=256, aspect_ratio=16, head_dim=16, n_kv_head=2, window_pattern="SSSL")
    args.update(kw)
    return GPTConfig.from_depth(4, **args)


def test_activation_bytes_scale_linearly_with_batch():
    cfg = tiny()
    model = memory.meta_model(cfg)
    a1, a2, a3 = (memory.activation_bytes(cfg, b, model=model) for b in (1, 2, 3))
    assert a1 > 0 and a3 - a2 == a2 - a1  # exactly affine: fixed + b * per_sequence
    m = memory.activation_model(cfg, torch.bfloat16, model, batch=4)
    assert m["fixed"] + 4 * m["per_sequence"] == memory.activation_bytes(cfg, 4, model=model)
    assert 0 <= m["fixed"] < m["per_sequence"]


def test_activations_are_plausible():
    cfg = tiny()
    B, T, C, V = 2, cfg.sequence_len, cfg.n_embd, cfg.vocab_size
    s = memory.measure_saved(cfg, B, dtype=torch.float32)
    assert s["logits"] == B * T * V * 4             # the fused softcap loss keeps one (N, V) fp32 tensor
    assert s["weight_copies"] == 0                   # fp32 compute: the parameters themselves are saved
    assert s["other"] > cfg.n_layer * B * T * C * 4  # at least each block's input
    bf16 = memory.measure_saved(cfg, B, dtype=torch.bfloat16)
    model = memory.meta_model(cfg)
    matmul_bytes = 2 * model.num_matmul_params()     # one bf16 copy of every Linear weight ...
    assert matmul_bytes <= bf16["weight_copies"] <= matmul_bytes + 2 * model.param_counts()["scalars"]  # ... + scalars


@pytest.mark.parametrize("kw", [{}, dict(n_kv_head=4, window_pattern="L", softcap=0.0)])
def test_meta_measurement_equals_a_real_cpu_run(kw):
    """The meta-device figure equals the bytes a real fp32 forward on the CPU saves, exactly."""
    cfg = tiny(**kw)
    meta = memory.measure_saved(cfg, 2, dtype=torch.float32, device="meta")
    cpu = memory.measure_saved(cfg, 2, dtype=torch.float32, device="cpu", gpu_kernels=False)
    assert meta == cpu


def test_gpu_kernel_routing_keeps_the_math():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 24, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 5, 24, dtype=torch.float64)
    ref = torch.autograd.grad((F.rms_norm(x, (24,)) * y).sum(), x)[0]
    got = torch.autograd.grad((memory._FusedRMSNorm.apply(x, torch.finfo(x.dtype).eps) * y).sum(), x)[0]
    assert torch.allclose(ref, got)
    cfg = tiny()
    model = GPT.build(cfg, seed=0, dtype=torch.float32)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.sequence_len))
    with memory.GPUKernels():
        routed = model(idx, targets=idx)
    assert torch.allclose(routed, model(idx, targets=idx), atol=1e-5)


def test_kv_cache_bytes():
    cfg = tiny()
    model = memory.meta_model(cfg)
    per_token = cfg.n_layer * 2 * cfg.n_kv_head * cfg.head_dim * 2
    assert model.kv_bytes_per_token(torch.bfloat16) == per_token
    assert memory.kv_cache_bytes(model, 1000, 3, torch.bfloat16) == 3 * 1000 * per_token
    assert memory.meta_model(preset("d24")).kv_bytes_per_token(torch.bfloat16) == 147_456  # nanochat's figure
