"""Phase 7 checkpoint: the eval bundle and the Hub's parquet exports, downloaded from stand-ins on 127.0.0.1.

A real HTTP server (``http.server`` in a thread, a free port, stopped by the fixture) serves
files the test wrote, honours byte ranges, and can cut a response short, so the real
download code (Phase 5's ``fetch_one`` with ``url_source``) runs end to end with no network.
"""
from __future__ import annotations

import hashlib
import io
import random
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.phase7


class StandIn:
    """A tiny HTTP server: ``files`` maps a path to bytes; ``cut[path]`` = responses to break mid-body."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                stand_in.requests.append((self.path, rng))
                data = stand_in.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if stand_in.cut.get(self.path):
                    stand_in.cut[self.path] -= 1
                    self.wfile.write(body[:len(body) // 2])     # then hang up: a dropped connection
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    s = StandIn()
    yield s
    s.stop()


def bundle_zip(filler: int = 0) -> bytes:
    """A two-task eval bundle in nanochat's layout (plus ``filler`` random bytes, to make it big)."""
    core_yaml = ("icl_tasks:\n"
                 "- label: tiny_mc\n  dataset_uri: group/tiny_mc.jsonl\n  num_fewshot: [1]\n"
                 "  icl_task_type: multiple_choice\n  continuation_delimiter: \"\\nAnswer: \"\n"
                 "- label: tiny_lm\n  dataset_uri: group/tiny_lm.jsonl\n  num_fewshot: [0]\n"
                 "  icl_task_type: language_modeling\n")
    meta = "Eval Task,Task Category,Random baseline\ntiny_mc,x,25.0\ntiny_lm,x,0.0\n"
    mc = "".join(json.dumps({"query": f"q{i}", "choices": ["a", "b", "c", "d"], "gold": i % 4}) + "\n"
                 for i in range(6))
    lm = "".join(json.dumps({"context": f"c{i}", "continuation": "x"}) + "\n" for i in range(3))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("eval_bundle/core.yaml", core_yaml)
        z.writestr("eval_bundle/eval_meta_data.csv", meta)
        z.writestr("eval_bundle/eval_data/group/tiny_mc.jsonl", mc)
        z.writestr("eval_bundle/eval_data/group/tiny_lm.jsonl", lm)
        if filler:
            z.writestr("eval_bundle/filler.bin", random.Random(0).randbytes(filler))
    return buf.getvalue()


def test_bundle_download_resumes_checks_and_unpacks(stand_in, tmp_path):
    from phases.phase7_eval import bundle
    data = bundle_zip(filler=3 << 20)                            # 3 MiB: the downloader writes 1 MiB chunks
    stand_in.files["/eval_bundle.zip"] = data
    stand_in.cut["/eval_bundle.zip"] = 1                         # the first response breaks mid-file
    root = bundle.download_bundle(f"{stand_in.url}/eval_bundle.zip", hashlib.sha256(data).hexdigest(),
                                  out=tmp_path / "eval_bundle", sleep=lambda s: None, show_progress=False)
    first, second = [r for _, r in stand_in.requests]
    assert first is None and second == "bytes=1048576-"          # resumed after the chunk that arrived
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_bundle"]             # no zip, partial or temp left
    tasks = bundle.load_bundle_tasks(root)
    assert [(t.name, t.task_type, t.num_fewshot, t.delimiter, t.random_baseline, len(t.rows)) for t in tasks] == \
        [("tiny_mc", "multiple_choice", 1, "\nAnswer: ", 0.25, 6), ("tiny_lm", "language_modeling", 0, " ", 0.0, 3)]
    stand_in.stop()                                              # second time: no network needed
    assert bundle.download_bundle("http://127.0.0.1:9/eval_bundle.zip", out=root) == root


def test_bundle_with_a_bad_checksum_never_appears(stand_in, tmp_path):
    from phases.phase7_eval import bundle
    stand_in.files["/eval_bundle.zip"] = bundle_zip()
    with pytest.raises(Exception, match="sha256 mismatch") as err:
        bundle.download_bundle(f"{stand_in.url}/eval_bundle.zip", "0" * 64, out=tmp_path / "eval_bundle",
                               retries=2, sleep=lambda s: None, show_progress=False)
    assert type(err.value).__name__ == "UserError" and not list(tmp_path.iterdir())


def test_bundle_offline_is_one_clear_error(tmp_path):
    from phases.phase7_eval import bundle
    with pytest.raises(Exception, match="offline") as err:
        bundle.download_bundle("http://127.0.0.1:9/eval_bundle.zip", out=tmp_path / "eval_bundle",
                               sleep=lambda s: pytest.fail("offline must not be retried"), show_progress=False)
    assert type(err.value).__name__ == "UserError"


def test_zip_with_unsafe_paths_is_refused(tmp_path):
    from phases.phase7_eval import bundle
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../evil.txt", "x")
    (tmp_path / "b.zip").write_bytes(buf.getvalue())
    with pytest.raises(Exception, match="unsafe path"):
        bundle.unzip_atomically(tmp_path / "b.zip", tmp_path / "eval_bundle")
    assert not (tmp_path.parent / "evil.txt").exists() and not (tmp_path / "eval_bundle").exists()


def _parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def test_hub_parquet_export_is_listed_downloaded_and_cached(stand_in, tmp_path):
    from phases.phase7_eval import hub
    rows = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(5)]
    stand_in.files["/api/datasets/openai/gsm8k/parquet/main/test"] = json.dumps(
        [f"{stand_in.url}/files/main/test/0.parquet", f"{stand_in.url}/files/main/test/1.parquet"]).encode()
    stand_in.files["/files/main/test/0.parquet"] = _parquet(rows[:3])
    stand_in.files["/files/main/test/1.parquet"] = _parquet(rows[3:])
    stand_in.cut["/files/main/test/1.parquet"] = 1
    got = hub.hub_rows("GSM8K", endpoint=stand_in.url, out=tmp_path / "gsm8k", sleep=lambda s: None,
                       show_progress=False)
    assert got == rows
    assert (tmp_path / "gsm8k" / "manifest.json").is_file()
    stand_in.stop()
    assert hub.hub_rows("GSM8K", endpoint="http://127.0.0.1:9", out=tmp_path / "gsm8k") == rows   # cached


def test_hub_offline_and_bad_listing_are_clear(stand_in, tmp_path):
    from phases.phase7_eval import hub
    with pytest.raises(Exception, match="offline"):
        hub.hub_rows("MMLU", endpoint="http://127.0.0.1:9", out=tmp_path / "a", show_progress=False)
    stand_in.files["/api/datasets/cais/mmlu/parquet/all/test"] = b"<html>not json</html>"
    with pytest.raises(Exception, match="not JSON"):
        hub.hub_rows("MMLU", endpoint=stand_in.url, out=tmp_path / "b", show_progress=False)
    with pytest.raises(Exception, match="unknown chat task"):
        hub.hub_rows("SQuAD", endpoint=stand_in.url, out=tmp_path / "c")
