"""Phase 2: the training loop (lesson: README.md in this folder).

Modules: ``config`` (TrainConfig, TOML, derived plan), ``data`` (tokenize once, token
windows), ``schedule`` (learning-rate multiplier), ``evaluate`` (bits per byte, samples),
``metrics`` (metrics.jsonl, console, MFU), ``checkpoint`` (atomic checkpoints, resume),
``train`` (the loop).
"""
