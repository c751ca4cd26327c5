"""Training configuration: a TOML file, command-line overrides, and what they derive.

``TrainConfig`` is every knob of a pretraining run. A TOML file may group keys under any
section headers (``[model]``, ``[optim]``…; sections are only for reading, keys are
unique); ``--set key=value`` or dedicated flags override them. ``plan.derive`` turns the
config into a ``Plan`` (the model, the batch arithmetic, the horizon and the cost), printed
before training starts.

Later phases add keys of their own. A phase that changes Phase 2's defaults subclasses
``TrainConfig`` once (Phase 3); keys that combine across phases are plain dataclasses that
``compose`` unions into one flat config class (Phase 5's pretraining config = Phase 3's +
Phase 4's + Phase 5's keys), so no class inherits twice and one TOML file sets them all.

**Every value is checked** (``check_config``, on loading and before a run): each key has the
type of its default, floats are finite, ints fit in 64 bits, and each key lies in its range
(``limits``, a class attribute beside each config class: ``LIMITS`` here). -1 means "derive it"
only for the keys that say so (``derived``); any other value out of range is an error naming
the key, never silently reinterpreted.

What it leaves out: the automatic batch size, horizon and LR scaling from depth (Phase 3).

Run: ``python -m phases.phase2_training.plan [FILE.toml]`` loads and checks a config through this
module and prints what it derives.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, NamedTuple

from phases.common.console import UserError
from phases.common.files import read_text
from phases.phase1_transformer.config import GPTConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# --8<-- [start:train_config]
@dataclass
class TrainConfig:
    # model: the depth dial and Phase 1's switches
    depth: int = 4
    aspect_ratio: int = 64
    head_dim: int = 64
    sequence_len: int = 256
    window_pattern: str = "L"
    n_kv_head: int = 0               # 0 = as many as query heads
    value_embeds: bool = True
    resid_scalars: bool = True
    smear: bool = True
    backout: bool = True
    qk_norm: bool = True
    softcap: float = 15.0
    # data and tokenizer ("" = the defaults under $MINI_NANOCHAT_BASE_DIR)
    data_dir: str = ""
    tokenizer_dir: str = ""
    # batch and horizon
    device_batch_size: int = 16      # rows per forward/backward
    total_batch_size: int = -1       # tokens per optimizer step; -1 = one micro-batch per rank
    num_iterations: int = 500
    max_seconds: float = 0.0         # > 0: stop training after this much time (a wall-clock budget)
    # optimizer: AdamW with one LR per parameter kind (Phase 3 adds Muon)
    optimizer: str = "adamw"
    matrix_lr: float = 0.003
    embedding_lr: float = 0.01
    unembedding_lr: float = 0.003
    scalar_lr: float = 0.01
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    warmup_steps: int = 20
    warmdown_ratio: float = 0.5
    final_lr_frac: float = 0.05
    # evaluation and logging
    eval_every: int = 100            # 0 = only at the end
    eval_tokens: int = 131_072
    sample_every: int = 0            # 0 = only at the end
    sample_tokens: int = 24
    log_every: int = 10              # console lines when not on a terminal
    # the run
    run_name: str = "run"
    run_dir: str = ""                # "" = <base>/runs/<run_name>
    save_every: int = 100            # 0 = only at the end
    keep_last: int = 2
    stop_after_step: int = 0         # > 0: checkpoint and stop after this step (resume later); 0 = off
    seed: int = 42
    device: str = ""                 # "" = cuda if available, else cpu
    dtype: str = ""                  # "" = Phase 1's policy (bf16 on capable CUDA, else fp32); "auto" = measured on CPU
    compile: bool = False
    peak_flops: float = 0.0          # for MFU; 0 = known GPU table or a measured CPU matmul peak
    tensorboard: bool = False
    wandb: bool = False
# --8<-- [end:train_config]

    def model_config(self, vocab_size: int) -> GPTConfig:
        head_dim = self.head_dim
        base = GPTConfig.from_depth(self.depth, vocab_size=vocab_size, sequence_len=self.sequence_len,
                                    aspect_ratio=self.aspect_ratio, head_dim=head_dim)
        return base.replace(n_kv_head=self.n_kv_head or base.n_head, window_pattern=self.window_pattern,
                            value_embeds=self.value_embeds, resid_scalars=self.resid_scalars,
                            smear=self.smear, backout=self.backout, qk_norm=self.qk_norm,
                            softcap=self.softcap)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


FIELDS = {f.name: f for f in fields(TrainConfig)}


# -- the allowed values ------------------------------------------------------------------------------------

class Limit(NamedTuple):
    ok: Callable[[float], bool]
    text: str                                       # "must be <text>"


def at_least(lo: float) -> Limit:
    return Limit(lambda v: v >= lo, f">= {lo:g}")


def above(lo: float) -> Limit:
    return Limit(lambda v: v > lo, f"> {lo:g}")


def between(lo: float, hi: float, hi_open: bool = False) -> Limit:
    return Limit((lambda v: lo <= v < hi) if hi_open else (lambda v: lo <= v <= hi),
                 f"in [{lo:g}, {hi:g}{')' if hi_open else ']'}")


def derived(limit: Limit) -> Limit:
    """``limit``, or exactly -1: "derive it" (from the depth dial, the device count...)."""
    return Limit(lambda v: v == -1 or limit.ok(v), f"{limit.text}, or -1 to derive it")


def one_of(*choices: str) -> Limit:
    return Limit(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


LIMITS = {
    "depth": at_least(1), "aspect_ratio": at_least(1), "head_dim": at_least(2), "sequence_len": at_least(1),
    "n_kv_head": at_least(0), "softcap": at_least(0), "device_batch_size": at_least(1),
    "total_batch_size": derived(at_least(1)), "num_iterations": derived(at_least(1)), "max_seconds": at_least(0),
    "matrix_lr": at_least(0), "embedding_lr": at_least(0), "unembedding_lr": at_least(0), "scalar_lr": at_least(0),
    "weight_decay": at_least(0), "adam_beta1": between(0, 1, hi_open=True), "adam_beta2": between(0, 1, hi_open=True),
    "warmup_steps": at_least(0), "warmdown_ratio": between(0, 1), "final_lr_frac": between(0, 1),
    "eval_every": at_least(0), "eval_tokens": at_least(1), "sample_every": at_least(0), "sample_tokens": at_least(0),
    "log_every": at_least(1), "save_every": at_least(0), "keep_last": at_least(0), "stop_after_step": at_least(0),
    "seed": Limit(lambda v: 0 <= v < 2 ** 63, "between 0 and 2^63 - 1"), "dtype": one_of("", "auto", "float32", "bfloat16", "float16"), "peak_flops": at_least(0),
    "run_name": Limit(lambda v: v not in ("", ".", "..") and "/" not in v and "\\" not in v,
                      "a folder name (no '/'; --run-dir takes a path)"),
}
TrainConfig.limits = LIMITS   # every config class carries the limits of its keys (compose merges them)


def check_config(cfg) -> None:
    """Raise a UserError naming the first key whose value is of the wrong type or out of range."""
    limits = getattr(type(cfg), "limits", {})
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), type(f.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UserError(f"{f.name} must be {'an int' if kind is int else 'a ' + kind.__name__}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise UserError(f"{f.name} must be a finite number, got {value!r}")
        if kind is int and not -2 ** 63 <= value < 2 ** 63:
            raise UserError(f"{f.name} = {value} does not fit in 64 bits")
        limit = limits.get(f.name)
        if limit is not None and not limit.ok(value):
            raise UserError(f"{f.name} must be {limit.text}, got {value!r}")


# --8<-- [start:compose]
def compose(name: str, base: type, *parts: type, module: str | None = None) -> type:
    """One flat config class: ``base``'s keys, then each part's (a later default wins).

    The result subclasses ``base`` only (its methods and ``isinstance`` checks keep working);
    the parts are plain dataclasses of keys, copied in, never inherited: no diamond.
    ``module``: the caller's ``__name__``, where the class says it lives.
    """
    specs: dict[str, tuple] = {}
    for part in (base, *parts):
        for f in fields(part):
            if f.name in specs and type(specs[f.name][2].default) is not type(f.default):
                raise TypeError(f"{part.__name__}.{f.name} changes the type of an existing key")
            specs[f.name] = (f.name, f.type, dataclasses.field(default=f.default))
    cls = dataclasses.make_dataclass(name, list(specs.values()), bases=(base,))
    cls.__module__ = module or __name__       # (make_dataclass's own module= needs Python 3.12)
    cls.limits = {k: v for part in (base, *parts) for k, v in getattr(part, "limits", {}).items()}
    return cls
# --8<-- [end:compose]


def _coerce(field: dataclasses.Field, value, source: str):
    name, kind = field.name, type(field.default)
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower().replace("_", "")
        try:
            if kind is bool:
                if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError
                return text in ("true", "1", "yes", "on")
            if kind is int and "e" in text:          # 1e6 is a whole number; 2.5e0 and 1e999 are not ints
                number = float(text)
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return kind(text)
        except (ValueError, OverflowError):
            raise UserError(f"{source}: {name} must be {'an int' if kind is int else 'a ' + kind.__name__}, "
                            f"got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{source}: {name} must be a {kind.__name__}, got {value!r}")
    return value


def parse_overrides(items: list[str]) -> dict:
    """``["matrix_lr=0.004", "depth=6"]`` (``--set`` arguments) -> {"matrix_lr": "0.004", "depth": "6"}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip().replace("-", "_")] = value
    return out


def _setting_hint(key: str, valid) -> str:
    """A near miss of a setting's name: a TOML section written into it (``optim.matrix_lr``:
    settings are flat, the sections only group them) or a typo (``matirx_lr``)."""
    import difflib
    last = key.rpartition(".")[2]
    if last != key and last in valid:
        return f" (settings are flat: write {last}=..., the TOML sections only group them)"
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]}?)" if close else ""

def load_config(path: str | Path | None = None, overrides: dict | None = None, cls=TrainConfig) -> TrainConfig:
    """Defaults <- TOML file <- overrides (later wins). Unknown keys are errors.

    ``cls`` is the config class: a later phase's subclass of TrainConfig adds its own keys.
    """
    valid = {f.name: f for f in fields(cls)}
    values: dict = {}
    if path is not None:
        path = Path(path)
        text = read_text(path, "config file", give="a .toml file (see examples/)")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"config file {path} is not valid TOML: {e}") from None
        except RecursionError:
            raise UserError(f"config file {path}: values nested too deeply") from None
        flat: dict = {}
        for key, value in raw.items():
            items = value.items() if isinstance(value, dict) else [(key, value)]
            for k, v in items:
                if k in flat:
                    raise UserError(f"{path}: key {k!r} appears twice")
                flat[k] = v
        for k, v in flat.items():
            if k not in valid:
                raise UserError(f"{path}: unknown key {k!r}; valid keys: {', '.join(valid)}")
            values[k] = _coerce(valid[k], v, str(path))
    for k, v in (overrides or {}).items():
        if k not in valid:
            raise UserError(f"unknown setting {k!r}{_setting_hint(k, valid)}; valid keys: {', '.join(valid)}")
        values[k] = _coerce(valid[k], v, "override")
    cfg = cls(**values)
    check_config(cfg)
    return cfg
