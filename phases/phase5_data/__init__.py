"""Phase 5: the data pipeline (lesson: README.md in this folder).

Modules: ``download`` (pretraining shards from the Hugging Face Hub), ``stream``
(documents from parquet row groups, split across ranks, tokenized in the background),
``packing`` (best-fit and the simpler packers, with statistics), ``loader`` (the
resumable packed loader and ``make_data``), ``recipe`` (the loader in a Phase 2 recipe),
``pretrain`` (the pretraining run: Phases 3 + 4 + 5 composed, and its command line).
"""
