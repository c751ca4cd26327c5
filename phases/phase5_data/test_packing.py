"""Phase 5 checkpoint, step 2: packing documents into rows (packing.py): best-fit and the simpler packers."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.phase5


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
