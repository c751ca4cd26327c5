"""Phase 0: tokenizer & data basics (lesson: README.md in this folder).

Modules: ``corpus`` (the embedded corpus), ``bpe`` (the tokenizer), ``fast`` (tiktoken
fast path), ``naive`` (the recount-every-merge reference trainer), ``chat`` (chat format
and loss mask), ``evaluate`` (bytes per token vs rustbpe), ``visualize`` (token display),
``common`` (utilities every phase uses).
"""
