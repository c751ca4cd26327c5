"""Phase 2 checkpoint: what a run reports (metrics.py): the one reader of metrics.jsonl, ETA, MFU peaks."""
from __future__ import annotations

import json

import pytest

from phases.phase2_training import metrics

pytestmark = pytest.mark.phase2


def test_read_metrics_skips_what_a_crash_cut_and_counts_it(tmp_path):
    log = metrics.MetricsLog(tmp_path)
    for step in range(1, 4):
        log.write({"event": "step", "step": step, "loss": 1.0 / step})
    log.close()
    text = (tmp_path / metrics.METRICS_FILE).read_text()
    (tmp_path / metrics.METRICS_FILE).write_text(text + "not json\n" + '{"event": "step", "step": 4, "lo')
    report: dict = {}
    records = metrics.read_metrics(tmp_path, report)
    assert [r["step"] for r in records] == [1, 2, 3] and report == {"bad_lines": 1, "cut_last_line": True}
    assert metrics.read_metrics(tmp_path / metrics.METRICS_FILE) == records       # the file works as well
    log = metrics.MetricsLog(tmp_path)
    log.truncate_after(2)                                                         # what a resume from step 2 does
    log.close()
    lines = (tmp_path / metrics.METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_debias_eta_and_gpu_table():
    ema = 0.0
    for step in range(1, 4):
        ema = 0.9 * ema + 0.1 * 2.0
        assert metrics.debias(ema, step) == pytest.approx(2.0)                   # a constant loss stays itself
    assert metrics.eta_seconds(10, 20, 0.5) == 5.0
    assert metrics.eta_seconds(10, 20, 0.5, train_time=9.0, max_seconds=10.0) == pytest.approx(1.0)  # budget first
    assert metrics.eta_seconds(30, 20, 0.5) == 0.0
    assert metrics.gpu_spec("h100-pcie")[:2] == ("H100 PCIe", 756e12)
    assert metrics.gpu_spec("NVIDIA H100 80GB HBM3")[0] == "H100" and metrics.gpu_spec("X100") is None
