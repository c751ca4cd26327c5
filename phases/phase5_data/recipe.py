"""Phase 5's recipe for Phase 2's loop: the streaming, BOS-aligned, packed loader as the data part.

``recipe(base)`` returns ``base`` (default: Phase 2's recipe) with ``make_data`` replaced by
``loader.make_data``: this rank's documents, tokenized in the background, packed best-fit
into rows that start with ``<|bos|>``, with an exact resume state in every checkpoint.
Everything else in ``base`` (Phase 3's optimizer, Phase 4's ranks) stays as it is; the
pretraining recipe that puts all three together is ``pretrain.py``.

What it leaves out: everything but the data.

Run nothing here directly; ``python -m phases.phase5_data.pretrain`` trains with it.
"""
from __future__ import annotations

import dataclasses

from phases.phase2_training.recipe import Recipe
from phases.phase5_data.loader import make_data


# --8<-- [start:recipe]
def recipe(base: Recipe | None = None) -> Recipe:
    """``base`` (default: Phase 2's) fed by the packed streaming loader."""
    return dataclasses.replace(base or Recipe(), make_data=make_data)
# --8<-- [end:recipe]
