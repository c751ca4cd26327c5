"""Phase 5 checkpoint: row-group sharding, best-fit packing, exact resume, throughput, clear errors.

Resume tolerance (ADR.md): bitwise. Batches after a restore are torch.equal to those of an
uninterrupted loader; training resumed through Phase 2's loop gives identical losses and
weights on CPU float32.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from phases.phase2_training import checkpoint as ck

pytestmark = pytest.mark.phase5


def _paths(d, split="train"):
    from phases.phase0_tokenizer.shards import list_shards
    return list_shards(d, split)


# -- step 1: documents from row groups, shared out by rank ---------------------------------

def test_rank_sharding_is_disjoint_and_covering(stream, grouped_dir):
    paths = _paths(grouped_dir)
    everything = stream.shard_units(paths)
    assert len(everything) > 6                                      # many row groups to share
    per_rank = [stream.DocumentStream(paths, r, 3) for r in range(3)]
    units = [set((u.path, u.row_group) for u in ds.units) for ds in per_rank]
    assert all(not (units[a] & units[b]) for a in range(3) for b in range(a + 1, 3))
    assert set.union(*units) == {(u.path, u.row_group) for u in everything}
    # document level: one epoch of every rank together = every training document once
    texts = Counter()
    for ds in per_rank:
        got = ds.read(range(ds.docs_per_epoch))
        texts.update(got.values())
    import pyarrow.parquet as pq
    expected = Counter(t for p in paths for t in pq.read_table(p).column("text").to_pylist())
    assert texts == expected


def test_document_numbers_run_across_epochs(stream, grouped_dir):
    ds = stream.DocumentStream(_paths(grouped_dir), 1, 2)
    d = ds.docs_per_epoch
    assert ds.locate(0) == (0, 0, 0) and ds.locate(d) == (1, 0, 0)
    assert ds.locate(d + 9)[0] == 1 and ds.read([3])[3] == ds.read([d + 3])[d + 3]


def test_background_tokenization_is_in_order_and_prepends_bos(stream, grouped_dir, tiny_data):
    tok = tiny_data["tok"]
    ds = stream.DocumentStream(_paths(grouped_dir))
    docs = stream.TokenizedDocs(ds, tok, start=5, threads=2, prefetch=2)
    got = [docs.next() for _ in range(ds.docs_per_epoch + 3)]          # wraps into epoch 1
    docs.close()
    assert [n for n, _ in got] == list(range(5, 5 + len(got)))
    texts = ds.read([n for n, _ in got])
    assert all(ids == [tok.bos_token_id] + tok.encode_ordinary(texts[n]) for n, ids in got)


# -- step 2: packing ---------------------------------------------------------------------

def _docs(lengths, start=100):
    """Documents [BOS=0, k, k+1, ...] with distinct token values."""
    out, k = [], start
    for n in lengths:
        out.append([0] + list(range(k, k + n - 1)))
        k += n
    return out


def test_packing_statistics_on_a_fixed_set(packing):
    docs = _docs([6, 5, 4, 3, 8])                                       # 26 tokens
    rows, st = packing.pack(docs, 10, "best_fit", buffer_size=5)
    # row 1: the 8 (largest that fits), then nothing fits in 2: the shortest (3) cropped to 2
    assert rows[0].tolist() == docs[4] + docs[3][:2]
    assert rows[1].tolist() == docs[0] + docs[2]                        # row 2: 6 then 4
    assert (st.rows, st.doc_tokens, st.cropped_tokens, st.pad_tokens) == (2, 21, 1, 0)  # the 5 is left over
    rows, st = packing.pack(docs, 10, "greedy")
    assert rows[0].tolist() == docs[0] + docs[1][:4]
    assert (st.rows, st.doc_tokens, st.cropped_tokens, st.utilisation) == (2, 26, 6, 1.0)
    rows, st = packing.pack(docs, 10, "padding")
    assert rows[0].tolist() == docs[0] + [packing.PAD] * 4
    assert (st.rows, st.pad_tokens, st.cropped_tokens) == (3, 12, 0) and st.utilisation == pytest.approx(18 / 30)
    rows, st = packing.pack(docs, 10, "concat", bos=0)
    assert (st.rows, st.bos_rows, st.cropped_tokens, st.doc_tokens) == (2, 1, 0, 20)


def test_best_fit_crops_less_than_greedy(packing):
    import random
    rng = random.Random(0)
    docs = _docs([rng.randint(2, 120) for _ in range(3000)])          # all shorter than a row
    _, best = packing.pack(docs, 257, "best_fit", buffer_size=200)
    _, greedy = packing.pack(docs, 257, "greedy")
    _, padded = packing.pack(docs, 257, "padding")
    assert best.utilisation == greedy.utilisation == 1.0 and best.bos_aligned == 1.0
    assert best.crop_fraction < 0.1 * greedy.crop_fraction              # measured: 0.8% vs 13.4%
    assert padded.crop_fraction == 0 and padded.utilisation < 0.9      # measured: 84.4% used


def test_every_packed_row_starts_with_bos_and_is_full(loader_mod, grouped_dir, tiny_data):
    tok = tiny_data["tok"]
    loader = loader_mod.PackedLoader(_paths(grouped_dir), tok, batch_size=4, seq_len=48, buffer_size=16)
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
    loader = loader_mod.PackedLoader(_paths(grouped_dir), tiny_data["tok"], 4, 48, buffer_size=1000)
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
    make = lambda threads: loader_mod.PackedLoader(_paths(grouped_dir), tiny_data["tok"], 4, 48,  # noqa: E731
                                                   threads=threads, buffer_size=16)
    a = make(2)
    _batches(a, cut)
    state = json.loads(json.dumps(a.state_dict()))                       # survives meta.json
    assert {"epoch", "file", "row_group", "next_doc", "buffer"} <= state.keys()
    expected = _batches(a, 6)
    b = make(1)                                                          # thread count is irrelevant
    b.load_state_dict(state)
    for (xa, ya), (xb, yb) in zip(expected, _batches(b, 6)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    a.close(), b.close()


def test_resume_refuses_another_world_size(loader_mod, grouped_dir, tiny_data):
    a = loader_mod.PackedLoader(_paths(grouped_dir), tiny_data["tok"], 2, 32, rank=0, world_size=2, buffer_size=8)
    a.next_batch()
    b = loader_mod.PackedLoader(_paths(grouped_dir), tiny_data["tok"], 2, 32, buffer_size=8)
    with pytest.raises(Exception, match="rank 0 of 2.*same number of ranks"):
        b.load_state_dict(a.state_dict())
    a.close(), b.close()


def _records(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "step"]


def test_resume_through_training_is_bitwise_exact(loader_mod, tiny_data, grouped_dir, tmp_path, monkeypatch):
    import phases.phase2_training.train as loop
    cfg = loader_mod.DataConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4,
                                num_iterations=10, warmup_steps=2, eval_every=5, eval_tokens=256, save_every=5,
                                sample_tokens=2, data_dir=str(grouped_dir), tokenizer_dir=str(tiny_data["tokenizer_dir"]),
                                run_dir=str(tmp_path / "full"), doc_buffer=12, tokenizer_threads=1)
    full = loader_mod.train(cfg, show_progress=False)
    original = loop.lr_multiplier

    def interrupted(step, *args):
        if step == 4:                                                    # Ctrl-C during step 5
            raise KeyboardInterrupt
        return original(step, *args)

    monkeypatch.setattr(loop, "lr_multiplier", interrupted)
    cut = cfg.replace(run_dir=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        loader_mod.train(cut, show_progress=False)
    monkeypatch.setattr(loop, "lr_multiplier", original)
    saved = ck.latest_checkpoint(tmp_path / "cut" / "checkpoints")
    assert saved.step == 4 and saved.meta["data_state"]["buffer"]        # the packer's buffer was saved
    loader_mod.train(cut, resume=True, show_progress=False)
    assert [r["loss"] for r in _records(tmp_path / "cut")] == [r["loss"] for r in _records(full.run_dir)]
    wa = ck.load_weights(ck.latest_checkpoint(full.run_dir / "checkpoints").path)
    wb = ck.load_weights(ck.latest_checkpoint(tmp_path / "cut" / "checkpoints").path)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_make_data_contract(loader_mod, tiny_data, grouped_dir):
    from phases.phase2_training.config import TrainConfig
    cfg = TrainConfig(sequence_len=32, device_batch_size=2, eval_tokens=256, data_dir=str(grouped_dir))
    loader, val = loader_mod.make_data(cfg, tiny_data["tok"], None, torch.device("cpu"), False)
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
    loader = loader_mod.PackedLoader(_paths(grouped_dir), tiny_data["tok"], B, T, threads=1)
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
        loader_mod.PackedLoader(_paths(bad_dir), tiny_data["tok"], 2, 32)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"content": ["x"]}), bad)
    with pytest.raises(Exception, match=r"shard_00001\.parquet has no string column 'text'"):
        stream.DocumentStream(_paths(bad_dir))


def test_corrupt_row_group_is_named_when_read(loader_mod, grouped_dir, tiny_data, tmp_path):
    bad_dir = tmp_path / "bad"
    shutil.copytree(grouped_dir, bad_dir)
    path = bad_dir / "shard_00000.parquet"
    data = bytearray(path.read_bytes())
    data[200:1200] = b"\x00" * 1000                                      # the footer survives, pages do not
    path.write_bytes(bytes(data))
    loader = loader_mod.PackedLoader(_paths(bad_dir), tiny_data["tok"], 2, 32)
    with pytest.raises(Exception, match=r"shard_00000\.parquet: row group \d+ cannot be read"):
        loader.next_batch()
    loader.close()


@pytest.mark.gpu
def test_cuda_batches_equal_cpu_batches(loader_mod, grouped_dir, tiny_data):
    """The pinned-buffer, non-blocking path delivers the same batches; earlier ones stay intact."""
    cpu = loader_mod.PackedLoader(_paths(grouped_dir), tiny_data["tok"], 4, 48, buffer_size=16)
    gpu = loader_mod.PackedLoader(_paths(grouped_dir), tiny_data["tok"], 4, 48, device="cuda", buffer_size=16)
    expected, got = _batches(cpu, 8), _batches(gpu, 8)                   # all held at once
    torch.cuda.synchronize()
    for (xa, ya), (xb, yb) in zip(expected, got):
        assert xb.is_cuda and torch.equal(xa, xb.cpu()) and torch.equal(ya, yb.cpu())
    cpu.close(), gpu.close()
