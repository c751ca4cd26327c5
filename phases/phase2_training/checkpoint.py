"""Checkpoints that survive crashes: atomic, checksummed, never unpickled.

A run directory looks like::

    runs/cpu_demo/
      metrics.jsonl                      one JSON record per step / evaluation / sample
      checkpoints/step_000200/
        model.safetensors                the weights (safetensors: a header + raw tensors)
        optim.pt                         optimizer state and RNG states (loaded weights_only)
        meta.json                        step, configs, val bpb, loop and data state, sha256 of the files

A checkpoint is first written into ``step_000200.tmp-<random>/``, every file fsynced, and
only then renamed to ``step_000200/`` (a directory rename is atomic), so a crash at any
moment leaves either the complete new checkpoint or none of it. ``meta.json`` records a
sha256 of the other files; ``latest_checkpoint`` skips (and names) any checkpoint whose
files are missing or do not match, so resuming always starts from the latest *good* one.

``check_checkpoint`` is the one integrity check (the loop, the tools and the chat half use
it): meta.json readable and naming the right step, the safetensors header parses and its
tensors lie back to back and fill the file, their names and shapes are what
``model_config`` builds, ``optim.pt`` is a torch.save archive, and (unless ``hash=False``)
every sha256 matches. It lists problems instead of raising; ``verify_checkpoint`` raises
the first one.

With several ranks (Phase 4) rank 0 writes one checkpoint; a sharded optimizer first
gathers its state into the single-process layout, so any world size can resume it.

Reading a run back (Phases 6-9 and the tools): ``find_checkpoint(run, step=None)`` accepts a
run name, a run folder, its ``checkpoints/`` folder, one step folder or ``RUN@STEP`` and
returns the newest good checkpoint (or the one at ``step``); ``read_meta`` its meta.json; ``load_model(run,
device)`` returns ``(GPT, tokenizer, meta)`` ready to generate with. They are the only
readers of this format.

What it leaves out: per-rank optimizer files (nanochat's layout), cloud storage.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from phases.common.console import UserError
from phases.common.paths import run_dir, runs_dir

FORMAT_VERSION = 1
STEP_PREFIX = "step_"
FOLDER = re.compile(r"step_(\d+)(\.tmp-.*)?")    # a checkpoint folder, or a save a crash interrupted
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


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError:
        raise UserError("checkpoints need the safetensors package: pip install safetensors") from None
    return st


@dataclass
class Checkpoint:
    path: Path
    step: int
    meta: dict


# --8<-- [start:save]
def save_checkpoint(ckpt_dir: str | os.PathLike, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, meta: dict, keep_last: int = 2,
                    optimizer_state: dict | None = None) -> Path:
    """Write checkpoint ``step`` atomically; then delete all but the newest ``keep_last``.

    ``optimizer_state``: the optimizer's state_dict when the caller already has it (Phase 4
    gathers a sharded optimizer's state on every rank, then rank 0 alone writes it).
    """
    st = _safetensors()
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = step_dir(ckpt_dir, step)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=ckpt_dir))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        st.save_file(weights, tmp / "model.safetensors")
        state = {"optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
                 "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(state, tmp / "optim.pt")
        files = {name: sha256_file(tmp / name) for name in ("model.safetensors", "optim.pt")}
        full_meta = {"format_version": FORMAT_VERSION, "step": step, "files": files, **meta}
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=2))
        for name in ("model.safetensors", "optim.pt", "meta.json"):
            _fsync(tmp / name)
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)  # atomic: the checkpoint appears complete or not at all
        _fsync(ckpt_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final
# --8<-- [end:save]


def step_dir(ckpt_dir: str | os.PathLike, step: int) -> Path:
    """``<ckpt_dir>/step_000200``: the folder of step ``step``."""
    return Path(ckpt_dir) / f"{STEP_PREFIX}{step:06d}"


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories (no ``.tmp-``), oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir()
             if p.is_dir() and p.name.startswith(STEP_PREFIX) and p.name[len(STEP_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX):]))


# -- integrity -------------------------------------------------------------------------------

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
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"{path.name}: the header is not valid JSON ({e})") from None
    metadata = header.pop("__metadata__", None) if isinstance(header, dict) else {}
    tensors = []
    for name, info in header.items() if isinstance(header, dict) else [("<header>", None)]:
        try:
            dtype, shape, (start, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
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
    import torch
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT
    with torch.device("meta"):
        model = GPT(GPTConfig.from_dict(json.loads(model_config_json)))
    return {k: list(v.shape) for k, v in model.state_dict().items()}


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


def check_checkpoint(path: str | os.PathLike, hash: bool = True) -> CheckReport:
    """Every integrity check short of loading tensors; problems are listed, never raised."""
    path = Path(path)
    m = FOLDER.fullmatch(path.name)
    c = CheckReport(path, int(m.group(1)) if m else -1)
    if m is not None and m.group(2):
        c.problems.append("incomplete: a save was interrupted (crash or kill while writing); safe to delete")
        return c
    try:
        c.meta = meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        return _with(c, "meta.json is missing")
    except (ValueError, OSError) as e:
        return _with(c, f"meta.json is corrupt ({e})")
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        return _with(c, f"meta.json: unsupported checkpoint format {meta.get('format_version') if isinstance(meta, dict) else meta!r}")
    c.step = c.step if m else int(meta.get("step", -1))
    if m and meta.get("step") != c.step:
        c.problems.append(f"meta.json says step {meta.get('step')!r} but the folder is step {c.step}")
    files = meta.get("files", {})
    c.problems += [f"meta.json records no sha256 for {n}" for n in FILES if n not in files]
    c.problems += [f"{n} is missing" for n in files if not (path / n).is_file()]
    weights = path / "model.safetensors"
    if weights.is_file():
        try:
            c.header = read_safetensors_header(weights)
        except UserError as e:
            c.problems.append(str(e))
    if c.header is not None and "model_config" in meta:
        try:
            want = _expected_shapes(json.dumps(meta["model_config"], sort_keys=True))
        except (UserError, TypeError, ValueError) as e:
            want = None
            c.problems.append(f"meta.json: model_config cannot build a model ({e})")
        got = {t["name"].removeprefix("_orig_mod."): t["shape"] for t in c.header["tensors"]}
        if want is not None and got != want:
            bad = sorted(set(want) ^ set(got)) + sorted(k for k in set(want) & set(got) if want[k] != got[k])
            c.problems.append(f"model.safetensors does not match model_config: {len(bad)} tensor(s) missing, "
                              f"extra or of another shape, e.g. {', '.join(bad[:3])}")
    if (path / "optim.pt").is_file() and not zipfile.is_zipfile(path / "optim.pt"):
        c.problems.append("optim.pt is not a torch.save archive (truncated or overwritten)")
    if hash:
        c.problems += [f"{n}: sha256 mismatch (corrupt or truncated since it was saved)"
                       for n, digest in files.items() if (path / n).is_file() and sha256_file(path / n) != digest]
    return c


def _with(c: CheckReport, problem: str) -> CheckReport:
    c.problems.append(problem)
    return c


def scan_checkpoints(run: str | os.PathLike, hash: bool = True) -> list[CheckReport]:
    """Every step folder of a run (its folder or its ``checkpoints/``), .tmp- leftovers too, oldest first."""
    run = Path(run)
    ckdir = run if run.name == "checkpoints" else run / "checkpoints"
    found = [p for p in ckdir.iterdir() if p.is_dir() and FOLDER.fullmatch(p.name)] if ckdir.is_dir() else []
    found.sort(key=lambda p: (int(FOLDER.fullmatch(p.name)[1]), p.name))
    return [check_checkpoint(p, hash) for p in found]


def verify_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """``check_checkpoint`` with every check; the first problem is raised as a UserError naming the file."""
    c = check_checkpoint(path, hash=True)
    if c.problems:
        raise UserError(f"checkpoint file {Path(path)}{os.sep}{c.problems[0]}")
    return Checkpoint(Path(path), c.step, c.meta)


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Checkpoint | None:
    """The newest checkpoint that verifies; bad ones are skipped with a warning naming them."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return verify_checkpoint(path)
        except UserError as e:
            warnings.warn(f"skipping bad checkpoint: {e}", stacklevel=2)
    return None


def load_weights(path: str | os.PathLike, device="cpu") -> dict[str, torch.Tensor]:
    st = _safetensors()
    f = Path(path) / "model.safetensors"
    try:
        weights = st.load_file(str(f), device=str(device))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise UserError(f"checkpoint file {f} cannot be read: {e}") from None
    return {k.removeprefix("_orig_mod."): v for k, v in weights.items()}


def load_checkpoint(ckpt: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    device="cpu") -> None:
    """Restore weights (strict), optimizer state and RNG states from a verified checkpoint."""
    missing, unexpected = model.load_state_dict(load_weights(ckpt.path, device), strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint {ckpt.path} does not match the model: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]} (was it made with another configuration?)")
    f = ckpt.path / "optim.pt"
    try:
        state = torch.load(f, map_location=device, weights_only=True)  # never unpickles code
    except Exception as e:
        raise UserError(f"checkpoint file {f} cannot be read: {e}") from None
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


# -- reading a run back ---------------------------------------------------------------------------

def list_runs(root: str | os.PathLike | None = None) -> list[Path]:
    """Run folders (those holding ``checkpoints/``) at or below ``root`` (default ``<base>/runs``)."""
    root = Path(root).expanduser() if root is not None else runs_dir()
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    runs = []
    for here, dirs, _ in os.walk(root):
        if "checkpoints" in dirs:
            runs.append(Path(here))
            dirs.clear()  # a run's insides are not searched for more runs
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(runs)


def resolve_run(path_or_run: str | os.PathLike) -> Path:
    """A run folder from a run name, the run folder, its ``checkpoints/`` or one step folder."""
    p = Path(path_or_run).expanduser()
    if not p.exists() and len(p.parts) == 1:
        p = run_dir(p.name)                   # a run name
    if not p.is_dir():
        raise UserError(f"{path_or_run}: no such run directory (nor a run name under {runs_dir()})")
    if FOLDER.fullmatch(p.name) and p.parent.name == "checkpoints":
        p = p.parent.parent
    elif p.name == "checkpoints":
        p = p.parent
    if not (p / "checkpoints").is_dir():
        raise UserError(f"{p} is not a run directory: it has no checkpoints/ folder "
                        "(runs are made by training, Phase 2: `mini-nanochat pretrain`)")
    return p


def split_spec(spec: str | os.PathLike) -> tuple[str, int | None]:
    """``"cpu_demo@200"`` -> ``("cpu_demo", 200)``; anything without ``@STEP`` -> ``(spec, None)``."""
    run, sep, step = str(spec).rpartition("@")
    return (run, int(step)) if sep and step.isdigit() else (str(spec), None)


def step_folder(path_or_run: str | os.PathLike, step: int) -> Path:
    """The folder of step ``step`` of a run (it must exist; the error lists the steps there are)."""
    folder = step_dir(resolve_run(path_or_run) / "checkpoints", step)
    if not folder.is_dir():
        have = ", ".join(p.name for p in list_checkpoints(folder.parent)) or "none"
        raise UserError(f"{folder.parent.parent} has no checkpoint at step {step}; it has: {have}")
    return folder


# --8<-- [start:load_model]
def find_checkpoint(path_or_run: str | os.PathLike, step: int | None = None) -> Checkpoint:
    """The newest good checkpoint of a run, or the one named (a step folder, ``RUN@STEP`` or ``step``).

    Accepts a step folder (``.../checkpoints/step_000250``), a ``checkpoints/`` folder, a
    run folder, or a bare run name (looked up under ``<base>/runs``).
    """
    path_or_run, at = split_spec(path_or_run)
    step = step if step is not None else at
    given = Path(path_or_run).expanduser()
    if not given.exists() and len(given.parts) == 1:
        given = run_dir(given.name)           # a run name
    if not given.exists():
        raise UserError(f"no run or checkpoint at {path_or_run} (a run name, run folder or step folder; "
                        "runs are made by training, Phase 2: `mini-nanochat pretrain`)")
    if step is not None:
        return verify_checkpoint(step_folder(given, step))
    if (given / "meta.json").exists():
        return verify_checkpoint(given)                     # one step folder: exactly this one
    ckpts = given / "checkpoints" if (given / "checkpoints").is_dir() else given
    found = latest_checkpoint(ckpts)
    if found is None:
        raise UserError(f"{given} holds no good checkpoint (looked in {ckpts}); checkpoints are written by "
                        "training (Phase 2: `mini-nanochat pretrain`)")
    return found


def read_meta(path_or_run: str | os.PathLike, step: int | None = None) -> dict:
    """The verified ``meta.json`` of a checkpoint (see ``find_checkpoint`` for what ``path_or_run`` may be)."""
    return find_checkpoint(path_or_run, step).meta


def load_model(path_or_run: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None, step: int | None = None,
               tokenizer: str | os.PathLike | None = None):
    """``(GPT, tokenizer, meta)`` of a checkpoint, in eval mode on ``device``.

    The tokenizer is the one the run trained with: a copy in the run folder if there is
    one, else the file named in ``meta.json`` (or ``tokenizer``, a folder or file, when
    given); its vocabulary must match the model's.
    """
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT

    ckpt = find_checkpoint(path_or_run, step)
    meta = ckpt.meta
    try:
        config = GPTConfig(**meta["model_config"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{ckpt.path / 'meta.json'} has no usable model_config ({e})") from None
    candidates = [ckpt.path.parent.parent / "tokenizer.json"]
    if meta.get("tokenizer"):
        candidates.append(Path(meta["tokenizer"]))
    if tokenizer is not None:
        given = Path(tokenizer).expanduser()
        candidates = [given / "tokenizer.json" if given.is_dir() else given]
    tok_file = next((c for c in candidates if c.is_file()), None)
    if tok_file is None:
        raise UserError(f"the tokenizer of {ckpt.path} is gone (looked for {', '.join(map(str, candidates))})")
    tok = BPETokenizer.load(tok_file)
    if tok.vocab_size != config.vocab_size:
        raise UserError(f"{tok_file} has {tok.vocab_size} tokens but the model expects {config.vocab_size}: "
                        "not the tokenizer this run trained with")
    device = torch.device(device)
    model = GPT.build(config, device=device, dtype=dtype)
    missing, unexpected = model.load_state_dict(load_weights(ckpt.path, device), strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint {ckpt.path} does not match its own model_config: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    model.eval()
    return model, tok, meta
# --8<-- [end:load_model]
