"""Is this checkpoint folder usable? The one integrity check of the checkpoint format.

``checkpoint.py`` writes and reads checkpoints; this file holds the format's names
(``FILES``, ``META_FILE``, the ``step_N`` folder pattern) and ``check_checkpoint``, which the
loop, the tools and the chat half all use. It reads nothing but ``meta.json``,
``model.safetensors`` and ``optim.pt`` of the folder, and only when they are plain files (a
link could point anywhere; meta.json names no paths that are ever opened), and it lists
every problem instead of raising:

- meta.json is a JSON object of this format, its ``step`` agrees with the folder, its
  ``files`` map exactly the two files to a sha256 (and ``sizes`` to their byte counts);
- the safetensors header parses, its tensors lie back to back and fill the file, and
  their names and shapes are what ``model_config`` builds (on the meta device);
- ``optim.pt`` is a torch.save archive;
- ``resumable=True``: the keys resuming reads (``RESUME_KEYS``) are there, of their types;
- ``hash=True``: every sha256 matches.

``CorruptCheckpoint`` is the error for an unusable checkpoint: the loop falls back past it.

What it leaves out: checking tensor values (NaNs are the loop's business), signatures.
Run nothing here directly: ``python tools/checkpoint_browser.py check RUN`` shows its verdicts.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from phases.common.console import UserError

FORMAT_VERSION = 1
STEP_PREFIX = "step_"
FOLDER = re.compile(r"step_([0-9]{1,18})(\.tmp-.*)?")  # a checkpoint folder, or a save a crash interrupted
FILES = ("model.safetensors", "optim.pt")
META_FILE = "meta.json"
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CorruptCheckpoint(UserError):
    """A checkpoint that cannot be used (damaged, truncated, malformed); the loop falls back past it."""


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_safetensors_header(path: str | os.PathLike) -> dict:
    """Parse and check a .safetensors header (8-byte length + JSON) without reading tensor data."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if n < 2 or n > size - 8:
            raise UserError(f"{path.name}: header length {n:,} does not fit a {size:,}-byte file "
                            "(corrupt or truncated, or not a safetensors file)")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise UserError(f"{path.name}: the header is not valid JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise UserError(f"{path.name}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    tensors = []
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)
                    and _is_int(start) and _is_int(end) and 0 <= start <= end):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path.name}: malformed header entry for tensor {name!r}") from None
        if dtype not in DTYPE_BYTES:
            raise UserError(f"{path.name}: tensor {name!r} has an unknown dtype {dtype!r}")
        numel = math.prod(shape)
        if end - start != numel * DTYPE_BYTES[dtype]:
            raise UserError(f"{path.name}: tensor {name!r} spans {end - start:,} bytes, but {dtype} "
                            f"{shape} needs {numel * DTYPE_BYTES[dtype]:,}")
        tensors.append({"name": name, "dtype": dtype, "shape": shape, "numel": numel,
                        "bytes": end - start, "offsets": [start, end]})
    tensors.sort(key=lambda t: t["offsets"])
    pos = 0
    for t in tensors:
        if t["offsets"][0] != pos:
            raise UserError(f"{path.name}: tensor data is not contiguous at {t['name']!r} "
                            f"(starts at byte {t['offsets'][0]:,}, expected {pos:,})")
        pos = t["offsets"][1]
    if size != 8 + n + pos:
        raise UserError(f"{path.name}: the file is {size:,} bytes but its header describes "
                        f"8 + {n:,} + {pos:,} = {8 + n + pos:,} (corrupt or truncated, or padded)")
    return {"tensors": tensors, "header_bytes": n, "data_bytes": pos, "file_bytes": size, "metadata": metadata}


@functools.lru_cache(maxsize=8)
def _expected_shapes(model_config_json: str) -> dict[str, list[int]]:
    """Names and shapes of the state_dict a model_config builds (on the meta device: no memory)."""
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.memory import meta_model
    return {k: list(v.shape) for k, v in meta_model(GPTConfig.from_dict(json.loads(model_config_json))).state_dict().items()}


@dataclass
class CheckReport:
    """What ``check_checkpoint`` found: ``problems`` (each starts with the file it is about)."""
    path: Path
    step: int
    problems: list[str] = field(default_factory=list)
    meta: dict | None = None
    header: dict | None = None     # the safetensors header, when it parsed

    @property
    def ok(self) -> bool:
        return not self.problems


# What resuming reads from meta.json besides the files (train.py writes them all).
RESUME_KEYS = {"model_config": dict, "train_config": dict, "total_batch_size": int, "loop_state": dict,
               "data_state": dict}
LOOP_KEYS = ("smooth_loss", "min_val_bpb", "train_time", "val_bpb")


def _regular_file(path: Path) -> bool:
    """A plain file, not a link (which could point anywhere), a folder, a pipe or a device."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def check_checkpoint(path: str | os.PathLike, hash: bool = True, resumable: bool = False) -> CheckReport:
    """Every integrity check short of loading tensors; problems are listed, never raised.

    Only ``model.safetensors``, ``optim.pt`` and ``meta.json`` inside ``path`` are ever opened,
    and only when they are plain files: whatever meta.json says, nothing outside the folder is
    read. ``resumable``: also require what the loop needs to resume (``RESUME_KEYS``).
    """
    path = Path(path)
    m = FOLDER.fullmatch(path.name)
    c = CheckReport(path, int(m.group(1)) if m else -1)
    if m is not None and m.group(2):
        c.problems.append("incomplete: a save was interrupted (crash or kill while writing); safe to delete")
        return c
    if not path.is_dir() or path.is_symlink():
        return _with(c, "not a checkpoint folder (a file or a link)")
    if not _regular_file(path / META_FILE):
        return _with(c, f"{META_FILE} is missing" if not (path / META_FILE).exists() else f"{META_FILE} is not a file")
    try:
        c.meta = meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _with(c, f"{META_FILE} is corrupt ({type(e).__name__}: {str(e)[:80]})")
    if not isinstance(meta, dict):
        c.meta = None
        return _with(c, f"{META_FILE} is not a JSON object (got {type(meta).__name__})")
    if meta.get("format_version") != FORMAT_VERSION:
        return _with(c, f"{META_FILE}: unsupported checkpoint format {meta.get('format_version')!r}")
    step = meta.get("step")
    if not _is_int(step) or step < 0:
        c.problems.append(f"{META_FILE}: step must be a whole number, got {step!r}")
    elif m and step != c.step:
        c.problems.append(f"{META_FILE} says step {step} but the folder is step {c.step}")
    elif not m:
        c.step = step
    if not isinstance(meta.get("stage", ""), str):     # "sft", "rl": what Phase 9 serves as a chat model
        c.problems.append(f"{META_FILE}: stage must be a string, got {meta['stage']!r}")
    files = meta.get("files")
    if not isinstance(files, dict):
        return _with(c, f"{META_FILE}: 'files' must map each checkpoint file to its sha256, got {type(files).__name__}")
    c.problems += [f"{META_FILE} names {n!r} among its files: only {' and '.join(FILES)} belong to a checkpoint"
                   for n in files if n not in FILES]
    c.problems += [f"{META_FILE} records no valid sha256 for {n}" for n in FILES
                   if not (isinstance(files.get(n), str) and re.fullmatch("[0-9a-f]{64}", files[n]))]
    sizes = meta.get("sizes", {})                     # absent in checkpoints written before it was recorded
    bad = set()
    for n in FILES:
        f = path / n
        if not _regular_file(f):
            c.problems.append(f"{n} is missing" if not (f.exists() or f.is_symlink()) else
                              f"{n} is not a plain file (a link, folder or device): refused")
            bad.add(n)
        elif isinstance(sizes, dict) and _is_int(sizes.get(n)) and sizes[n] != f.stat().st_size:
            c.problems.append(f"{n}: {f.stat().st_size:,} bytes, but {sizes[n]:,} were saved (corrupt or truncated since it was saved)")
            bad.add(n)
    if "model.safetensors" not in bad:
        try:
            c.header = read_safetensors_header(path / "model.safetensors")
        except (UserError, OSError) as e:
            c.problems.append(str(e))
            bad.add("model.safetensors")
    if c.header is not None and "model_config" in meta:
        c.problems += _config_problems(meta["model_config"], c.header)
    if "optim.pt" not in bad and not zipfile.is_zipfile(path / "optim.pt"):
        c.problems.append("optim.pt is not a torch.save archive (truncated or overwritten)")
        bad.add("optim.pt")
    if resumable:
        c.problems += _resume_problems(meta)
    if hash:                                          # only plain, well-sized files of the folder are read
        c.problems += [f"{n}: sha256 mismatch (corrupt or truncated since it was saved)" for n in FILES
                       if n not in bad and isinstance(files.get(n), str) and sha256_file(path / n) != files[n]]
    return c


def _config_problems(model_config, header: dict) -> list[str]:
    """Does the header hold the tensors ``model_config`` builds, name for name, shape for shape?"""
    if not isinstance(model_config, dict):
        return [f"{META_FILE}: model_config is not a JSON object"]
    layers = model_config.get("n_layer")
    if _is_int(layers) and layers > len(header["tensors"]):   # every layer has tensors: do not build 10^9 blocks
        return [f"model.safetensors holds {len(header['tensors'])} tensors, too few for the {layers} layers of model_config"]
    try:
        want = _expected_shapes(json.dumps(model_config, sort_keys=True))
    except (UserError, TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as e:
        return [f"{META_FILE}: model_config cannot build a model ({str(e)[:120]})"]
    got = {t["name"].removeprefix("_orig_mod."): t["shape"] for t in header["tensors"]}
    if got == want:
        return []
    bad = sorted(set(want) ^ set(got)) + sorted(k for k in set(want) & set(got) if want[k] != got[k])
    return [f"model.safetensors does not match model_config: {len(bad)} tensor(s) missing, "
            f"extra or of another shape, e.g. {', '.join(bad[:3])}"]


def _resume_problems(meta: dict) -> list[str]:
    """What the loop needs to resume: each RESUME_KEYS entry, of its type; the loop state's numbers."""
    problems = [f"{META_FILE}: {k} is missing or not a {t.__name__} (needed to resume)"
                for k, t in RESUME_KEYS.items() if not isinstance(meta.get(k), t) or isinstance(meta.get(k), bool)]
    loop = meta.get("loop_state")
    if isinstance(loop, dict):
        problems += [f"{META_FILE}: loop_state.{k} is missing or not a number" for k in LOOP_KEYS
                     if not isinstance(loop.get(k), (int, float)) or isinstance(loop.get(k), bool)]
    return problems


def _with(c: CheckReport, problem: str) -> CheckReport:
    c.problems.append(problem)
    return c
