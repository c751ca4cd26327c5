"""The GPT's configuration, the one dial (``from_depth``), and the compute-dtype policy.

``GPTConfig`` holds every architectural choice of the model in ``model.py``; each of
nanochat's later additions is a switch here so the lesson (and Phase 2's ablation) can
turn it off. ``GPTConfig.from_depth`` derives width and heads from depth the way
nanochat does: ``n_embd = depth * aspect_ratio`` rounded up to a multiple of
``head_dim``, and ``n_head = n_embd / head_dim``.

``compute_dtype`` picks, once, the dtype the forward pass runs in: bf16 on CUDA with
compute capability >= 8.0, fp32 everywhere else; ``MINI_NANOCHAT_DTYPE`` overrides it.
Weights are always stored in fp32. ``resolve_device`` turns a ``--device`` string into a
device that exists here (or a clear error). ``check_size`` refuses, from the sizes alone
(``rough_params``), a config no machine could build, before anything is allocated.

What it leaves out: training hyperparameters (batch, learning rates, horizon): the depth
dial derives those in Phase 3.

Run: ``python -m phases.phase1_transformer.config 12`` prints what depth 12 derives.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace

import torch

from phases.common.console import UserError


@dataclass(frozen=True)
class GPTConfig:
    sequence_len: int = 2048     # longest sequence the model trains on (T)
    vocab_size: int = 32768      # from the tokenizer (nanochat: 2**15)
    n_layer: int = 12            # depth
    n_head: int = 6              # query heads
    n_kv_head: int = 6           # key/value heads; fewer than n_head = grouped-query attention
    n_embd: int = 768            # width (d_model)
    mlp_ratio: int = 4           # MLP hidden width = mlp_ratio * n_embd
    rope_base: float = 100_000.0
    window_pattern: str = "SSSL"  # per layer, tiled: S = short window, L = full context
    qk_norm: bool = True         # RMSNorm on q and k, then scale by qk_scale
    qk_scale: float = 1.2
    softcap: float = 15.0        # logits -> softcap * tanh(logits / softcap); 0 disables
    value_embeds: bool = True    # ResFormer-style value embeddings on alternating layers
    resid_scalars: bool = True   # learnable per-layer resid_lambdas and x0_lambdas
    smear: bool = True           # cheap bigram mix of the previous token's embedding
    backout: bool = True         # subtract a learned share of the mid-network residual
    pad_vocab_to: int = 64       # lm_head rows rounded up to a multiple (faster matmuls)

    def __post_init__(self):
        for f in fields(self):                     # a value of another type (a TOML list, a bool as a size)
            value, kind = getattr(self, f.name), type(f.default)
            if not (isinstance(value, kind) and not (kind is int and isinstance(value, bool))
                    or (kind is float and isinstance(value, int) and not isinstance(value, bool))):
                raise UserError(f"invalid GPTConfig: {f.name} must be {'an int' if kind is int else 'a ' + kind.__name__}, "
                                f"got {value!r}")
        checks = [
            (self.n_layer >= 1, f"n_layer must be >= 1, got {self.n_layer}"),
            (self.n_head >= 1 and self.n_embd % self.n_head == 0,
             f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})"),
            (1 <= self.n_kv_head <= self.n_head and self.n_head % self.n_kv_head == 0,
             f"n_kv_head ({self.n_kv_head}) must divide n_head ({self.n_head})"),
            (self.head_dim % 2 == 0, f"head_dim ({self.head_dim}) must be even for rotary embeddings"),
            (self.sequence_len >= 1 and self.vocab_size >= 2, "sequence_len and vocab_size must be positive"),
            (bool(self.window_pattern) and set(self.window_pattern.upper()) <= {"S", "L"},
             f"window_pattern must be made of S and L, got {self.window_pattern!r}"),
            (math.isfinite(self.softcap) and self.softcap >= 0, f"softcap must be >= 0 (0 disables it), got {self.softcap}"),
            (self.mlp_ratio >= 1, f"mlp_ratio must be >= 1 (the MLP is the hidden layer), got {self.mlp_ratio}"),
            (math.isfinite(self.rope_base) and self.rope_base > 1, f"rope_base must be > 1, got {self.rope_base}"),
            (math.isfinite(self.qk_scale) and self.qk_scale > 0, f"qk_scale must be > 0, got {self.qk_scale}"),
            (self.pad_vocab_to >= 1, "pad_vocab_to must be >= 1"),
            (self.n_embd >= 24 or not (self.value_embeds or self.smear),
             "value_embeds and smear read the first 12/24 channels: n_embd must be >= 24"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"invalid GPTConfig: {message}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        return math.ceil(self.vocab_size / self.pad_vocab_to) * self.pad_vocab_to

    # --8<-- [start:from_depth]
    @classmethod
    def from_depth(cls, depth: int, vocab_size: int = 32768, sequence_len: int = 2048,
                   aspect_ratio: int = 64, head_dim: int = 128, **overrides) -> "GPTConfig":
        """nanochat's dial: width = depth * aspect_ratio, rounded up to whole heads."""
        if depth < 1 or aspect_ratio < 1 or head_dim < 2:
            raise UserError(f"depth, aspect_ratio and head_dim must be positive "
                            f"(got {depth}, {aspect_ratio}, {head_dim})")
        n_embd = math.ceil(depth * aspect_ratio / head_dim) * head_dim
        n_head = n_embd // head_dim
        kw = dict(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=depth,
                  n_head=n_head, n_kv_head=n_head, n_embd=n_embd)
        kw.update(overrides)
        return cls(**kw)
    # --8<-- [end:from_depth]

    # --8<-- [start:windows]
    def window_sizes(self) -> list[int]:
        """Per layer: how many previous tokens a query may attend to (plus itself).

        "L" = the whole sequence; "S" = a quarter of it rounded up to a multiple of 128
        (512 at T=2048). The pattern is tiled over the layers and the last layer is
        always "L", so the final representation sees the whole context.
        """
        T = self.sequence_len
        short = min(T, math.ceil(T / 4 / 128) * 128)
        pattern = self.window_pattern.upper()
        chars = [pattern[i % len(pattern)] for i in range(self.n_layer)]
        chars[-1] = "L"
        return [T if c == "L" else short for c in chars]
    # --8<-- [end:windows]

    def has_value_embed(self, layer: int) -> bool:
        """Alternating layers, always including the last one."""
        return self.value_embeds and layer % 2 == (self.n_layer - 1) % 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown GPTConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes) -> "GPTConfig":
        return replace(self, **changes)

    def describe(self) -> str:
        """What the config (and the depth dial) derived, one line per item."""
        w = self.window_sizes()
        switches = [name for name, on in (("qk_norm", self.qk_norm), ("value_embeds", self.value_embeds),
                                          ("resid_scalars", self.resid_scalars), ("smear", self.smear),
                                          ("backout", self.backout)) if on]
        return "\n".join([
            f"depth (n_layer)     {self.n_layer}",
            f"width (n_embd)      {self.n_embd}",
            f"heads               {self.n_head} query, {self.n_kv_head} key/value, head_dim {self.head_dim}",
            f"mlp hidden          {self.mlp_ratio * self.n_embd}",
            f"sequence_len        {self.sequence_len}",
            f"vocab               {self.vocab_size} (lm_head padded to {self.padded_vocab_size})",
            f"windows per layer   {self.window_pattern} -> {w}",
            f"rope_base           {self.rope_base:g}",
            f"softcap             {self.softcap:g}" + (" (off)" if not self.softcap else ""),
            f"switches on         {', '.join(switches) or 'none'}",
        ])


# Named configurations (keyword arguments of ``GPTConfig.from_depth``). nanochat's
# speedrun-era sizes, its CPU script's d6, and our CPU demo. The CPU demo size is
# provisional: Phase 2 measures it against the demo's 10-minute budget.
PRESETS: dict[str, dict] = {
    "d12": dict(depth=12, vocab_size=32768, sequence_len=2048),
    "d20": dict(depth=20, vocab_size=32768, sequence_len=2048),
    "d24": dict(depth=24, vocab_size=32768, sequence_len=2048),
    "d26": dict(depth=26, vocab_size=32768, sequence_len=2048),
    "runcpu-d6": dict(depth=6, vocab_size=32768, sequence_len=512, head_dim=64, window_pattern="L"),
    "cpu-demo": dict(depth=4, vocab_size=8192, sequence_len=256, head_dim=64, window_pattern="L"),
}


def preset(name: str, **overrides) -> GPTConfig:
    """``GPTConfig`` of a named preset; keyword arguments override any field."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    kw = {**PRESETS[name], **overrides}
    return GPTConfig.from_depth(kw.pop("depth"), **kw)


# --8<-- [start:dtype]
def compute_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """bf16 on CUDA with compute capability >= 8.0, else fp32; MINI_NANOCHAT_DTYPE overrides."""
    name = os.environ.get("MINI_NANOCHAT_DTYPE", "").strip().lower()
    if name:
        table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
                 "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}
        if name not in table:
            raise UserError(f"MINI_NANOCHAT_DTYPE={name!r}: use bfloat16, float16 or float32")
        return table[name]
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float32
    return torch.float32
# --8<-- [end:dtype]


# -- refusing what cannot be built (memory.check_fits adds the device's memory) ---------------------
MAX_PARAMS = 10 ** 13     # 10 trillion: ~40x the largest dense models trained; 40 TB of fp32 weights
MAX_LAYERS = 10_000       # the deepest trained transformers have a few hundred


def rough_params(config: GPTConfig) -> int:
    """About how many parameters ``config`` builds (blocks, embeddings, lm_head), from its sizes alone."""
    C, L, V, kv = config.n_embd, config.n_layer, config.padded_vocab_size, config.n_kv_head * config.head_dim
    per_layer = 2 * C * C + 2 * C * kv + 2 * config.mlp_ratio * C * C     # q, proj; k, v; the MLP
    value_embeds = (L + 1) // 2 * config.vocab_size * kv if config.value_embeds else 0
    return L * per_layer + config.vocab_size * C + V * C + value_embeds


def gib(n: float) -> str:
    return f"{n / 2 ** 30:,.1f} GiB" if n < 2 ** 40 * 10 else f"{n / 2 ** 40:,.3g} TiB"


def check_size(config: GPTConfig) -> int:
    """``rough_params(config)``; a UserError with the figure if no machine could build it."""
    n = rough_params(config)
    if n > MAX_PARAMS or config.n_layer > MAX_LAYERS:
        raise UserError(f"a model of depth {config.n_layer} and width {config.n_embd} has about {n:.3g} parameters "
                        f"({gib(4 * n)} of fp32 weights): beyond any machine (this project refuses more than "
                        f"{MAX_PARAMS:.0e} parameters or {MAX_LAYERS:,} layers)")
    return n


def resolve_device(name: str = "") -> torch.device:
    """``""`` -> cuda if available, else cpu; else ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked to exist here."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"device {name!r} is not a device: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s), "
                            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError(f"device {name!r} asked for, but Apple's MPS is not available")
    elif device.type != "cpu":
        raise UserError(f"device {name!r}: training runs on cpu, cuda, cuda:N or mps, not {device.type}")
    return device


if __name__ == "__main__":
    import sys

    from phases.common.console import run_command

    def main():
        text = sys.argv[1] if len(sys.argv) > 1 else "12"
        if not text.isdigit():
            raise UserError(f"give a depth (a whole number >= 1), got {text!r}")
        config = GPTConfig.from_depth(int(text))
        check_size(config)
        print(config.describe())

    sys.exit(run_command(main))
