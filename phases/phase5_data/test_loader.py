"""Phase 5 checkpoint, steps 2-4: the packed loader (loader.py): BOS-aligned rows, exact resume, throughput, errors.

Resume tolerance (ADR.md): bitwise. Batches after a restore are torch.equal to those of an
uninterrupted loader; training resumed through Phase 2's loop gives identical losses and
weights on CPU float32.
"""
from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from phases.common.console import UserError
from phases.phase0_tokenizer.shards import list_shards

pytestmark = pytest.mark.phase5


def test_every_packed_row_starts_with_bos_and_is_full(loader_mod, grouped_dir, tiny_data):
    tok = tiny_data["tok"]
    loader = loader_mod.PackedLoader(list_shards(grouped_dir), tok, batch_size=4, seq_len=48, buffer_size=16)
    for _ in range(30):                                                  # several epochs of this tiny set
        x, y = loader.next_batch()
        assert x.shape == y.shape == (4, 48) and x.dtype == torch.int64
        assert (x[:, 0] == tok.bos_token_id).all()                       # BOS-aligned
        assert (x >= 0).all() and (x < tok.vocab_size).all()             # no padding anywhere
        assert torch.equal(x[:, 1:], y[:, :-1])                          # targets = inputs shifted
    assert loader.epoch >= 1 and loader.stats.utilisation == 1.0 and loader.stats.bos_aligned == 1.0
    loader.close()


def test_buffer_never_holds_two_copies_of_a_document(loader_mod, grouped_dir, tiny_data):
    """A buffer bigger than the data would hold the same documents from several epochs."""
    loader = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 4, 48, buffer_size=1000)
    per_epoch = loader.stream.docs_per_epoch
    for _ in range(40):
        loader.next_batch()
        held = [n % per_epoch for n in loader.buffer.numbers()]
        assert len(held) == len(set(held))
    assert loader.epoch >= 2
    loader.close()


# -- step 3: exact resume -------------------------------------------------------------------

def _batches(loader, n):
    return [loader.next_batch() for _ in range(n)]


@pytest.mark.parametrize("cut", [1, 9])                                  # 9 is past an epoch boundary
def test_loader_resume_is_exact(loader_mod, grouped_dir, tiny_data, cut):
    make = lambda threads: loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 4, 48,  # noqa: E731
                                                   threads=threads, buffer_size=16)
    a = make(2)
    _batches(a, cut)
    state = json.loads(json.dumps(a.state_dict()))                       # survives meta.json
    assert {"epoch", "file", "row_group", "next_doc", "buffer"} <= state.keys()
    expected = _batches(a, 6)
    b = make(1)                                                          # thread count is irrelevant
    b.load_state_dict(state)
    for k, ((xa, ya), (xb, yb)) in enumerate(zip(expected, _batches(b, 6))):
        assert torch.equal(xa, xb) and torch.equal(ya, yb), (
            f"batch {k + 1} after load_state_dict differs from the uninterrupted loader's: the state must restore "
            f"both the next document to read and the documents still in the buffer (state: {state})")
    a.close(), b.close()


def test_resume_refuses_another_world_size(loader_mod, grouped_dir, tiny_data):
    a = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 2, 32, rank=0, world_size=2, buffer_size=8)
    a.next_batch()
    b = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 2, 32, buffer_size=8)
    with pytest.raises(Exception, match="rank 0 of 2.*same number of ranks"):
        b.load_state_dict(a.state_dict())
    a.close(), b.close()


@pytest.mark.parametrize("bad", [{"buffer": [[0, 10 ** 9]]}, {"next_doc": "x"}, {"buffer": [[5]]},
                                 {"buffer": [[-3, 2]]}])
def test_resume_refuses_a_loader_state_that_is_not_one(loader_mod, grouped_dir, tiny_data, bad):
    """A checkpoint's loader state must name documents already pulled, at most a buffer's worth:
    a forged {"buffer": [[0, 10**9]]} would re-read the whole corpus (issue 15 #6)."""
    a = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 2, 32, buffer_size=8)
    a.next_batch()
    state = {**json.loads(json.dumps(a.state_dict())), **bad}
    b = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 2, 32, buffer_size=8)
    with pytest.raises((ValueError, TypeError)):
        b.load_state_dict(state)
    a.close(), b.close()


def test_resume_through_training_is_bitwise_exact(loader_mod, tiny_data, grouped_dir, assert_resume_exact):
    from phases.phase2_training import train as loop
    from phases.phase2_training.recipe import Recipe

    def train(cfg, **kw):                       # Phase 2's loop fed by the loader under test
        return loop.train(cfg, recipe=Recipe(make_data=loader_mod.make_data), **kw)

    cfg = loader_mod.DataConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4,
                                num_iterations=10, warmup_steps=2, eval_every=5, eval_tokens=256, save_every=5,
                                sample_tokens=2, data_dir=str(grouped_dir), tokenizer_dir=str(tiny_data["tokenizer_dir"]),
                                doc_buffer=12, tokenizer_threads=1)
    saved = assert_resume_exact(train, cfg, stop_after=4)                # stop after step 4 of 10
    assert saved.step == 4 and saved.meta["data_state"]["buffer"]        # the packer's buffer was saved


def test_make_data_contract(loader_mod, tiny_data, grouped_dir):
    from phases.phase2_training.config import TrainConfig
    from phases.phase2_training.recipe import Runtime
    cfg = TrainConfig(sequence_len=32, device_batch_size=2, eval_tokens=256, data_dir=str(grouped_dir))
    loader, val = loader_mod.make_data(cfg, tiny_data["tok"], None, torch.device("cpu"), Runtime(), False)
    assert 1 <= len(val) <= 4 and all(x.shape == (2, 32) for x, _ in val)
    x, _ = loader.next_batch()
    assert x.shape == (2, 32) and json.dumps(loader.state_dict())
    loader.close()


# -- step 4: speed and errors -----------------------------------------------------------------

def test_loader_outpaces_training(loader_mod, tiny_data, grouped_dir):
    """At a tiny size (B=8, T=128), the loader delivers tokens faster than a training step eats them."""
    from phases.phase1_transformer.model import GPT
    from phases.phase2_training.config import TrainConfig
    B, T = 8, 128
    model = GPT.build(TrainConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=T).model_config(512), seed=0)
    opt = torch.optim.AdamW(model.parameters())
    loader = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], B, T, threads=1)
    x, y = loader.next_batch()                                           # start-up excluded
    t0 = time.perf_counter()
    for _ in range(3):
        model(x, targets=y).backward()
        opt.step(), opt.zero_grad()
    train_tps = 3 * B * T / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    _batches(loader, 20)
    loader_tps = 20 * B * T / (time.perf_counter() - t0)
    loader.close()
    assert loader_tps > train_tps, (loader_tps, train_tps)


def test_corrupt_shard_is_named(loader_mod, stream, grouped_dir, tiny_data, tmp_path):
    bad_dir = tmp_path / "bad"
    shutil.copytree(grouped_dir, bad_dir)
    bad = bad_dir / "shard_00001.parquet"
    bad.write_bytes(b"this is not parquet" * 10)
    with pytest.raises(Exception, match=r"shard_00001\.parquet is not a readable parquet file"):
        loader_mod.PackedLoader(list_shards(bad_dir), tiny_data["tok"], 2, 32)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"content": ["x"]}), bad)
    with pytest.raises(Exception, match=r"shard_00001\.parquet has no string column 'text'"):
        stream.DocumentStream(list_shards(bad_dir))


def test_corrupt_row_group_is_named_when_read(loader_mod, grouped_dir, tiny_data, tmp_path):
    bad_dir = tmp_path / "bad"
    shutil.copytree(grouped_dir, bad_dir)
    path = bad_dir / "shard_00000.parquet"
    data = bytearray(path.read_bytes())
    data[200:1200] = b"\x00" * 1000                                      # the footer survives, pages do not
    path.write_bytes(bytes(data))
    loader = loader_mod.PackedLoader(list_shards(bad_dir), tiny_data["tok"], 2, 32)
    with pytest.raises(Exception, match=r"shard_00000\.parquet: row group \d+ cannot be read"):
        loader.next_batch()
    loader.close()


@pytest.mark.gpu
def test_cuda_batches_equal_cpu_batches(loader_mod, grouped_dir, tiny_data):
    """The pinned-buffer, non-blocking path delivers the same batches; earlier ones stay intact."""
    cpu = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 4, 48, buffer_size=16)
    gpu = loader_mod.PackedLoader(list_shards(grouped_dir), tiny_data["tok"], 4, 48, device="cuda", buffer_size=16)
    expected, got = _batches(cpu, 8), _batches(gpu, 8)                   # all held at once
    torch.cuda.synchronize()
    for (xa, ya), (xb, yb) in zip(expected, got):
        assert xb.is_cuda and torch.equal(xa, xb.cpu()) and torch.equal(ya, yb.cpu())
    cpu.close(), gpu.close()


def test_a_shard_rewritten_since_the_checkpoint_is_refused(loader_mod, grouped_dir, tiny_data, tmp_path):
    """Issue 15 re-attack: a shard rewritten with as many documents (text reversed) between a kill
    and ``--resume`` was resumed silently on other documents; the state keeps each shard's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    shutil.copytree(grouped_dir, data)
    a = loader_mod.PackedLoader(list_shards(data), tiny_data["tok"], 2, 32, buffer_size=8)
    a.next_batch()
    state = json.loads(json.dumps(a.state_dict()))
    a.close()
    shard = list_shards(data)[0]
    table = pq.read_table(shard)
    pq.write_table(pa.table({"text": [t[::-1] + "!" for t in table.column("text").to_pylist()]}), shard,
                   row_group_size=pq.ParquetFile(list_shards(grouped_dir)[0]).metadata.row_group(0).num_rows)
    b = loader_mod.PackedLoader(list_shards(data), tiny_data["tok"], 2, 32, buffer_size=8)
    with pytest.raises(UserError, match=f"the data changed since the checkpoint .{shard.name}: "):
        b.load_state_dict(state)
    b.close()
