"""Phase 7 checkpoint: the eval bundle (nanochat's CORE data), downloaded from a stand-in on 127.0.0.1.

A real HTTP server (``conftest.StandIn``: ``http.server`` in a thread, a free port, stopped by
the fixture) serves files the test wrote, honours byte ranges, and can cut a response short, so
the real download code (Phase 5's ``fetch_one`` with ``url_source``) runs end to end with no network.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile

import pytest

pytestmark = pytest.mark.phase7


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
