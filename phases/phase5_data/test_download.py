"""Phase 5 checkpoint: shard download against a fake hub (no network): retries, resume, atomic rename."""
from __future__ import annotations

import argparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.phase5
REPO = "karpathy/fineweb-edu-100b-shuffle"   # 1,823 shards: the validation shard is shard_01822


class FakeHub:
    """Serves files a test wrote; can fail mid-file, serve garbage, or be unreachable."""

    def __init__(self, root, download):
        self.root, self.dl = root, download
        self.calls: list[tuple[str, int]] = []   # (file, offset asked for)
        self.cut: dict[str, int] = {}            # file -> failures left: send half the bytes, then drop
        self.garbage: set[str] = set()
        self.offline = False

    def publish(self, name, rows):
        pq.write_table(pa.table({"text": [f"document {i} of {name}" * 40 for i in range(rows)]}), self.root / name)

    def __call__(self, repo_id, name, offset, out):
        assert repo_id == REPO
        self.calls.append((name, offset))
        if self.offline:
            raise self.dl.Offline("[Errno -2] Name or service not known")
        data = b"not parquet at all" * 100 if name in self.garbage else (self.root / name).read_bytes()
        if self.cut.get(name):
            self.cut[name] -= 1
            out.write(data[offset:offset + (len(data) - offset) // 2])
            raise ConnectionResetError("connection reset by peer")
        out.write(data[offset:])


@pytest.fixture
def hub(tmp_path, download):
    root = tmp_path / "hub"
    root.mkdir()
    h = FakeHub(root, download)
    for i in (0, 1, 2, 1822):
        h.publish(f"shard_{i:05d}.parquet", 50 + i % 7)
    return h


def test_fetches_n_shards_and_the_val_shard(download, hub, tmp_path):
    rep = download.download(3, REPO, workers=2, out_dir=tmp_path / "out", source=hub, show_progress=False)
    names = ["shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet", "shard_01822.parquet"]
    assert rep.downloaded == names and not rep.failed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names       # no .partial left
    assert all((tmp_path / "out" / n).read_bytes() == (hub.root / n).read_bytes() for n in names)
    again = download.download(3, REPO, out_dir=tmp_path / "out", source=hub, show_progress=False)
    assert again.skipped == names and not again.downloaded                      # existing files skipped


def test_retries_continue_the_partial_file(download, hub, tmp_path):
    hub.cut["shard_00001.parquet"] = 2                                          # two drops mid-file
    sleeps = []
    rep = download.download(2, REPO, workers=1, out_dir=tmp_path / "out", source=hub, show_progress=False,
                            sleep=sleeps.append)
    size = (hub.root / "shard_00001.parquet").stat().st_size
    offsets = [o for n, o in hub.calls if n == "shard_00001.parquet"]
    assert offsets == [0, size // 2, size // 2 + (size - size // 2) // 2]      # each retry resumes
    assert sleeps == [2.0, 4.0]                                                 # backoff 2, 4, ...
    assert (tmp_path / "out" / "shard_00001.parquet").read_bytes() == (hub.root / "shard_00001.parquet").read_bytes()
    assert "shard_00001.parquet" in rep.downloaded


def test_an_unreadable_file_never_gets_its_final_name(download, hub, tmp_path):
    hub.garbage.add("shard_00000.parquet")
    rep = download.download(1, REPO, out_dir=tmp_path / "out", source=hub, show_progress=False,
                            retries=3, sleep=lambda s: None)
    assert "not a readable parquet file" in rep.failed["shard_00000.parquet"]
    assert "gave up after 3 attempts" in rep.failed["shard_00000.parquet"]
    assert [o for n, o in hub.calls if n == "shard_00000.parquet"] == [0, 0, 0]  # garbage is not continued
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shard_01822.parquet"]


def test_a_resumed_partial_from_an_earlier_run_is_continued(download, hub, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    data = (hub.root / "shard_00000.parquet").read_bytes()
    (out / "shard_00000.parquet.partial").write_bytes(data[:1000])              # an interrupted run
    download.download(1, REPO, out_dir=out, source=hub, show_progress=False)
    assert ("shard_00000.parquet", 1000) in hub.calls
    assert (out / "shard_00000.parquet").read_bytes() == data


def test_offline_fails_at_once_with_a_clear_message(download, hub, tmp_path):
    hub.offline = True
    with pytest.raises(Exception, match="cannot reach the Hugging Face Hub.*offline") as err:
        download.download(2, REPO, out_dir=tmp_path / "out", source=hub, show_progress=False,
                          sleep=lambda s: pytest.fail("offline must not be retried"))
    assert type(err.value).__name__ == "UserError"
    assert not list((tmp_path / "out").glob("*.partial"))                       # no empty leftovers


@pytest.mark.parametrize("n, dataset, message", [
    (0, REPO, "-n must be between 1 and 1822"),
    (5, "nope/data", "unknown dataset 'nope/data'"),
])
def test_bad_arguments_are_clear(download, tmp_path, n, dataset, message):
    with pytest.raises(Exception, match=message):
        download.download(n, dataset, out_dir=tmp_path, source=lambda *a: None, show_progress=False)


def test_cli_arguments_mount(download):
    parser = argparse.ArgumentParser()
    download.add_arguments(parser)
    args = parser.parse_args(["-n", "4", "--dataset", "fineweb-edu", "--workers", "2"])
    assert (args.num_shards, args.dataset, args.workers) == (4, "fineweb-edu", 2)
    assert download.resolve_dataset(args.dataset) == REPO
