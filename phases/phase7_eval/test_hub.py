"""Phase 7 checkpoint: the Hub's parquet exports of the chat tasks, downloaded from a stand-in on 127.0.0.1.

A real HTTP server (``conftest.StandIn``: ``http.server`` in a thread, a free port, stopped by
the fixture) serves files the test wrote, honours byte ranges, and can cut a response short, so
the real download code (Phase 5's ``fetch_one`` with ``url_source``) runs end to end with no network.
"""
from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.phase7


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
