"""What a training step keeps in memory, measured on the meta device: activations and the KV cache.

Counting parameters is easy; activation memory is not: it depends on which tensors autograd
saves for the backward pass. ``measure_saved`` runs one training forward pass of the real
``GPT`` on PyTorch's *meta* device (shapes, no memory, instant even for d26) and sums the
bytes of every tensor autograd saves, each storage once. Attention and RMSNorm are given the
footprint of the fused kernels a GPU runs (``GPUKernels``: q, k, v, output and logsumexp for
attention; input and 1/rms for RMSNorm), since on the meta device PyTorch would otherwise
take the math path that keeps the whole (B, H, T, T) attention matrix. The figure is the
eager (uncompiled) footprint; torch.compile usually saves less. Activations are exactly
affine in the batch: ``activation_model`` measures at two batch sizes and returns
``fixed + batch x per_sequence``. ``kv_cache_bytes``: keys and values for inference.

Before anything is built, ``config.check_size`` refuses a config no machine could hold
(building even its meta model would take minutes) and ``check_fits`` one whose weights,
gradients and optimizer state alone exceed the device's memory; both say the figure. They use
``config.rough_params``, the parameter count from the config's sizes alone (within a few percent).

What it leaves out: the CUDA context and allocator overhead, optimizer temporaries.

Run: ``python -m phases.phase1_transformer.memory`` prints the measurement for the CPU demo model
(``tools/model_calculator.py`` shows it for any size, with the fit on a given GPU).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from phases.common.console import UserError
from phases.phase1_transformer.config import GPTConfig, check_size, gib
from phases.phase1_transformer.model import GPT


def meta_model(config: GPTConfig) -> GPT:
    check_size(config)
    with torch.device("meta"):
        return GPT(config)


# -- refusing what cannot be built: check_size and rough_params live in config.py (sizes alone) ----------
TRAIN_BYTES_PER_PARAM = 16  # fp32 weights 4 + gradients 4 + optimizer moments 8 (AdamW; Muon keeps less)


def device_memory(device: torch.device | str) -> int | None:
    """Bytes of memory of ``device`` (a GPU's, or the machine's RAM for the CPU); None if unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        import os
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):   # not POSIX
            return None
    return None


def check_fits(config: GPTConfig, device: torch.device | str, world_size: int = 1) -> None:
    """Refuse to train ``config`` on ``device`` when weights, gradients and optimizer state alone
    (16 bytes per parameter; activations come on top) exceed its memory (ZeRO-2 shards the
    optimizer state over ``world_size`` ranks)."""
    n = check_size(config)
    have = device_memory(device)
    need = n * (8 + 8 / world_size)
    if have is not None and need > have:
        raise UserError(f"depth {config.n_layer} (width {config.n_embd}) has about {n:,.3g} parameters: training "
                        f"needs at least {gib(need)} for weights, gradients and optimizer state "
                        f"({TRAIN_BYTES_PER_PARAM} bytes per parameter, activations not counted), but "
                        f"{torch.device(device)} has {gib(have)}; choose a smaller --depth")


class _FusedRMSNorm(torch.autograd.Function):
    """RMSNorm that saves what a fused GPU kernel saves: its input and fp32 1/rms per row."""

    @staticmethod
    def forward(ctx, x, eps):
        rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, rstd)
        return (x.float() * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, rstd = ctx.saved_tensors
        xh, g = x.float() * rstd, grad.float()
        return ((g - xh * (g * xh).mean(-1, keepdim=True)) * rstd).to(x.dtype), None


class GPUKernels(TorchFunctionMode):
    """Route rms_norm and SDPA to ops with a fused kernel's saved tensors (q, k, v, out, logsumexp).

    On the meta device PyTorch would otherwise decompose attention into the math path, which
    keeps the whole (B, H, T, T) attention matrix: not what a GPU (or this CPU) does.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.rms_norm:
            x = args[0]
            return _FusedRMSNorm.apply(x, kwargs.get("eps") or torch.finfo(x.dtype).eps)
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            mask = kwargs.get("attn_mask")
            if mask is not None and mask.dtype == torch.bool:  # what SDPA does before a fused kernel
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, 0.0, kwargs.get("is_causal", False), attn_mask=mask, scale=kwargs.get("scale"))[0]
        return func(*args, **kwargs)


def measure_saved(config: GPTConfig, batch: int, seq: int | None = None, dtype: torch.dtype = torch.bfloat16,
                  device: str = "meta", model: GPT | None = None, gpu_kernels: bool | None = None) -> dict:
    """Bytes autograd saves for backward in one training forward pass (loss included).

    Each storage counts once (a tensor saved twice, or two views of one tensor, are one);
    parameters and buffers are left out (they are the weights). "weight_copies" are compute-
    dtype casts of parameters (bf16 copies of the matrices); "logits" are the fp32 (B*T, V)
    tensors the loss keeps: the fused softcap loss keeps one, r = sigmoid(-2 z / cap) (log-softmax's
    output without a softcap). ``device="cpu"`` runs the real model on real tensors.
    """
    seq = seq or config.sequence_len
    if batch < 1 or seq < 1:
        raise UserError(f"batch and sequence length must be >= 1 (got {batch}, {seq})")
    if model is None:
        model = meta_model(config) if device == "meta" else GPT.build(config, device=device, seed=0)
    model.compute_dtype = dtype
    own = {t.untyped_storage()._cdata for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, tuple[int, str]] = {}
    keep = []  # hold every saved tensor so no storage address is reused while counting

    def pack(t):
        keep.append(t)
        key = t.untyped_storage()._cdata
        if key not in own and key not in seen:
            base = t._base if t._base is not None else t
            fn = base.grad_fn
            is_copy = (fn is not None and type(fn).__name__ == "ToCopyBackward0"
                       and type(fn.next_functions[0][0]).__name__ == "AccumulateGrad")
            is_logits = ((fn is not None and type(fn).__name__ in ("TanhBackward0", "LogSoftmaxBackward0"))
                         or (t.dim() == 2 and t.shape == (batch * seq, config.vocab_size)))  # the fused loss's
            kind = "weight_copies" if is_copy else "logits" if is_logits else "other"
            seen[key] = (t.untyped_storage().nbytes(), kind)
        return t

    idx = torch.zeros(batch, seq, dtype=torch.long, device=device)
    kernels = GPUKernels() if (device == "meta" if gpu_kernels is None else gpu_kernels) else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), kernels:
        model(idx, targets=idx)
    out = {k: sum(n for n, kind in seen.values() if kind == k) for k in ("weight_copies", "logits", "other")}
    out["saved"] = sum(out.values())
    return out


def activation_bytes(config: GPTConfig, batch: int, seq: int | None = None, dtype: torch.dtype = torch.bfloat16,
                     model: GPT | None = None) -> int:
    """Eager activation memory of one training step: saved tensors + two more fp32 logits-sized
    buffers, alive with them inside the loss (the raw logits and the log-sum-exp's temporary)."""
    seq = seq or config.sequence_len
    return measure_saved(config, batch, seq, dtype, model=model)["saved"] + logits_grad_bytes(config, batch, seq)


def logits_grad_bytes(config: GPTConfig, batch: int, seq: int) -> int:
    return 2 * batch * seq * config.vocab_size * 4


def activation_model(config: GPTConfig, dtype: torch.dtype, model: GPT | None = None, batch: int = 2) -> dict:
    """Measure at batch 1 and ``batch`` (>= 2); activations are exactly fixed + b * per_sequence."""
    model = model or meta_model(config)
    b, T = max(2, batch), config.sequence_len
    m1, mb = (measure_saved(config, n, T, dtype, model=model) for n in (1, b))
    a1, ab = (m["saved"] + logits_grad_bytes(config, n, T) for m, n in ((m1, 1), (mb, b)))
    per_seq = (ab - a1) // (b - 1)
    return dict(per_sequence=per_seq, fixed=a1 - per_seq, measured_batch=b,
                measured=dict(mb, logits_grad=logits_grad_bytes(config, b, T)))


def kv_cache_bytes(model: GPT, context: int, batch: int = 1, dtype: torch.dtype = torch.bfloat16) -> int:
    """Keys and values of every layer for ``batch`` sequences of ``context`` tokens (no window eviction)."""
    return batch * context * model.kv_bytes_per_token(dtype)


if __name__ == "__main__":
    from phases.phase1_transformer.config import preset

    cfg = preset("cpu-demo")
    for dtype in (torch.float32, torch.bfloat16):
        m = activation_model(cfg, dtype, batch=8)
        print(f"{str(dtype).removeprefix('torch.'):9s} activations per sequence {m['per_sequence'] / 2**20:8.1f} MiB, "
              f"fixed {m['fixed'] / 2**20:.1f} MiB (measured at batch {m['measured_batch']})")
