"""Phase 5: the data pipeline (lesson: README.md in this folder).

Modules: ``download`` (pretraining shards from the Hugging Face Hub), ``stream``
(documents from parquet row groups, split across ranks, tokenized in the background),
``packing`` (best-fit and the simpler packers, with statistics), ``loader`` (the
resumable packed loader, ``make_data``/``recipe``/``train`` for Phase 2's loop).
"""
