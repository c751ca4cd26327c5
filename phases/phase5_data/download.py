"""Download pretraining shards from the Hugging Face Hub: parallel, retried, resumable, checked.

nanochat pretrains on pre-shuffled text stored as ``shard_NNNNN.parquet`` files (one
``text`` column, row groups of 1,024 documents) in two Hub datasets:

- ``karpathy/climbmix-400b-shuffle`` (the default): 6,543 shards, ``shard_06542`` is validation;
- ``karpathy/fineweb-edu-100b-shuffle`` (the older one): 1,823 shards, ``shard_01822`` is validation.

``download(n)`` fetches shards ``0 … n-1`` plus the validation shard into
``$MINI_NANOCHAT_BASE_DIR/data/<dataset name>/``. The loader treats the folder like Phase 0's
embedded corpus: sorted shards, the last one (the validation shard) held out. Per file:

1. bytes go to ``shard_NNNNN.parquet.partial``; if that file exists from an interrupted
   run, the request asks only for the bytes after it (an HTTP ``Range`` request);
2. a failed attempt is retried up to ``retries`` times, waiting 2, 4, 8, … seconds; the
   partial file is kept, so each retry continues where the last one stopped;
3. the finished file must open as parquet with a string ``text`` column; if it does not,
   the partial file is deleted (it cannot be continued) and the attempt counts as failed;
4. only then is it renamed to its final name (``os.replace``: atomic), so a file with the
   final name is always complete. Existing final files are skipped.

When the machine cannot reach the Hub at all the download stops at once with a clear
message instead of retrying. ``source`` is injectable: tests pass a stand-in that serves
files they wrote, so they never touch the network.

What it leaves out: checksums against the Hub's metadata (the parquet check catches
truncation and garbage), authentication (the datasets are public), mirrors.

Run: ``python -m phases.phase5_data.download -n 2 [--dataset fineweb-edu] [--workers 4]``
(``mini-nanochat data download`` mounts the same ``add_arguments`` / ``run``).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from phases.common.console import UserError, command, progress
from phases.common.files import output_dir
from phases.common.paths import data_dir
from phases.phase0_tokenizer.shards import shard_name, shard_problem

DATASETS = {  # repo id -> number of shards (the last one is validation)
    "karpathy/climbmix-400b-shuffle": 6543,
    "karpathy/fineweb-edu-100b-shuffle": 1823,
}
ALIASES = {"climbmix": "karpathy/climbmix-400b-shuffle", "fineweb-edu": "karpathy/fineweb-edu-100b-shuffle"}
DEFAULT_DATASET = "karpathy/climbmix-400b-shuffle"
CHUNK = 1 << 20  # bytes per write: a 100 MB shard is ~100 writes


class Offline(ConnectionError):
    """The Hub cannot be reached at all (no DNS, no route): retrying will not help."""


# A source appends the bytes of `filename` after the first `offset` to the open file `out`.
Source = Callable[[str, str, int, "object"], None]


def hub_source(repo_id: str, filename: str, offset: int, out) -> None:
    """The real source: an HTTP (Range) GET through huggingface_hub's session."""
    import huggingface_hub

    url_source(huggingface_hub.hf_hub_url(repo_id, filename, repo_type="dataset"), "", offset, out)


def url_source(base_url: str, filename: str, offset: int, out) -> None:
    """A source for any HTTP(S) server: GET ``base_url/filename`` (``base_url`` alone when
    ``filename`` is empty) from byte ``offset``; Phase 7 fetches its evaluation data with it."""
    import huggingface_hub

    url = f"{base_url.rstrip('/')}/{filename}" if filename else base_url
    filename = filename or url.rsplit("/", 1)[-1]
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    session = huggingface_hub.get_session()
    try:
        if hasattr(session, "stream"):  # huggingface_hub >= 1.0: an httpx-style client
            with session.stream("GET", url, headers=headers, follow_redirects=True, timeout=30) as r:
                _check_status(r.status_code, offset, filename)
                for chunk in r.iter_bytes(CHUNK):
                    out.write(chunk)
        else:                           # older versions: a requests session
            with session.get(url, headers=headers, stream=True, timeout=30) as r:
                _check_status(r.status_code, offset, filename)
                for chunk in r.iter_content(CHUNK):
                    out.write(chunk)
    except Exception as e:
        name = type(e).__name__
        if name in ("ConnectError", "ConnectionError") and "timed out" not in str(e).lower():
            raise Offline(str(e)) from e  # refused, or the name did not resolve
        raise


def _check_status(status: int, offset: int, filename: str) -> None:
    if status == 404:
        raise UserError(f"{filename} does not exist on the Hub (HTTP 404)")
    if offset and status != 206:  # the server ignored the Range: continuing would corrupt the file
        raise ValueError(f"{filename}: the server did not honour the byte range (HTTP {status})")
    if status >= 400:
        raise ConnectionError(f"{filename}: HTTP {status}")


def check_parquet(path: Path) -> None:
    """Raise ValueError unless ``path`` is a usable shard (Phase 0's ``shards.shard_problem``)."""
    problem = shard_problem(path)
    if problem:
        raise ValueError(problem)


def resolve_dataset(name: str) -> str:
    repo = ALIASES.get(name, name)
    if repo not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join([*ALIASES, *DATASETS])}")
    return repo


@dataclass
class DownloadReport:
    out_dir: Path
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # already there
    failed: dict[str, str] = field(default_factory=dict)   # file -> last error
    bytes: int = 0


# --8<-- [start:fetch_one]
def fetch_one(repo_id: str, name: str, out_dir: Path, source: Source, retries: int, backoff: float,
              sleep: Callable[[float], None], on_bytes: Callable[[int], None],
              check: Callable[[Path], None] | None = None) -> int:
    """Download one shard (resuming a .partial), check it, rename it into place; returns bytes.

    ``check`` raises ValueError for a bad file (default: ``check_parquet``; Phase 7 passes a
    zip or checksum check for files that are not text shards)."""
    final, partial = out_dir / name, out_dir / (name + ".partial")
    for attempt in range(1, retries + 1):
        offset = partial.stat().st_size if partial.exists() else 0   # continue where we stopped
        try:
            with open(partial, "ab") as f:
                source(repo_id, name, offset, _Counting(f, on_bytes))
                f.flush()
                os.fsync(f.fileno())
            (check or check_parquet)(partial)     # garbage or truncation must not get the final name
            os.replace(partial, final)            # atomic: `final` only ever names a complete file
            return final.stat().st_size
        except (Offline, UserError):
            if partial.exists() and partial.stat().st_size == 0:
                partial.unlink()                  # nothing came: leave no empty file behind
            raise
        except ValueError as e:                   # a bad file cannot be continued: start over
            partial.unlink(missing_ok=True)
            error = e
        except Exception as e:                    # network trouble: keep the partial file, retry
            error = e
        if attempt < retries:
            sleep(backoff * 2 ** (attempt - 1))   # 2, 4, 8, 16 s with the default backoff
    raise RuntimeError(f"{name}: gave up after {retries} attempts: {error}")
# --8<-- [end:fetch_one]


class _Counting:
    """A file wrapper that reports every write to the progress bar."""

    def __init__(self, f, on_bytes):
        self.f, self.on_bytes = f, on_bytes

    def write(self, data: bytes) -> int:
        self.f.write(data)
        self.on_bytes(len(data))
        return len(data)


def download(n: int, dataset: str = DEFAULT_DATASET, workers: int = 4, out_dir: str | Path | None = None,
             source: Source | None = None, show_progress: bool = True, retries: int = 5,
             backoff: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> DownloadReport:
    """Fetch training shards ``0 … n-1`` and the validation shard of ``dataset``."""
    repo = resolve_dataset(dataset)
    total = DATASETS[repo]
    if not 1 <= n <= total - 1:
        raise UserError(f"-n must be between 1 and {total - 1} for {repo} (it has {total - 1} training shards)")
    if workers < 1 or retries < 1:
        raise UserError(f"--workers and retries must be >= 1, got {workers} and {retries}")
    out = output_dir(out_dir if out_dir else data_dir(repo.split("/")[1]), "--out")  # a file there: one clear error
    source = source or hub_source
    names = [shard_name(i) for i in range(n)] + [shard_name(total - 1)]
    report = DownloadReport(out)
    todo = []
    for name in names:
        (report.skipped if (out / name).exists() else todo).append(name)
    lock = threading.Lock()
    bar = progress(desc=f"downloading {len(todo)} shard(s) of {repo}", unit="B", enabled=show_progress)

    def on_bytes(k: int) -> None:
        with lock:
            bar.update(k)

    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fetch_one, repo, name, out, source, retries, backoff, sleep, on_bytes): name
                   for name in todo}
        for fut in as_completed(futures):
            name = futures[fut]
            try:
                report.bytes += fut.result()
                report.downloaded.append(name)
            except Offline as e:
                for other in futures:
                    other.cancel()
                raise UserError(f"cannot reach the Hugging Face Hub ({e}); you seem to be offline. "
                                f"Partial files in {out} will be continued next time; without network, "
                                "train on the embedded corpus (the default)") from None
            except (RuntimeError, UserError) as e:
                report.failed[name] = str(e)
    report.downloaded.sort()
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--num-shards", type=int, required=True, metavar="N",
                        help="training shards to fetch (0 … N-1); the validation shard always comes too")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help=f"Hub dataset or alias ({', '.join(ALIASES)}); default {DEFAULT_DATASET}")
    parser.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    parser.add_argument("--out", default=None, help="folder (default: $MINI_NANOCHAT_BASE_DIR/data/<dataset>)")
    # No --no-progress here: a subcommand's default would overwrite the main CLI's global flag
    # of the same name (argparse copies subparser defaults over the parent's values).


def run(args: argparse.Namespace) -> DownloadReport:
    report = download(args.num_shards, dataset=args.dataset, workers=args.workers, out_dir=args.out,
                      show_progress=not getattr(args, "no_progress", False))
    print(f"{report.out_dir}: {len(report.downloaded)} downloaded ({report.bytes / 1e6:,.1f} MB), "
          f"{len(report.skipped)} already there")
    for name, err in sorted(report.failed.items()):
        print(f"  failed: {err}")
    if report.failed:
        raise UserError(f"{len(report.failed)} shard(s) failed; run the same command again to retry them")
    print(f"train on them with: --set data_dir={report.out_dir}")
    return report


if __name__ == "__main__":
    sys.exit(command("Download pretraining shards from the Hugging Face Hub.", add_arguments, run))
