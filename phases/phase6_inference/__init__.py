"""Phase 6: KV-cache inference (lesson: README.md in this folder).

Modules: ``kv_cache`` (the preallocated, batched cache with a position per row),
``engine`` (prefill/decode, batched sampling, tools, stop strings, log-probs; the one
generation path of Phases 7-9), ``session`` (a multi-turn chat that keeps its cache),
``calculator`` (the AST-walking calculator tool), ``detok`` (UTF-8-safe streaming text),
``explore`` (per-step distributions, branches and trees; the generation explorer shows them),
``generate`` (the ``mini-nanochat generate`` command).
"""
