"""Phase 1: the transformer (lesson: README.md in this folder).

Modules: ``config`` (GPTConfig, the depth dial, the compute dtype), ``layers``
(RMSNorm, rotary embeddings, attention, MLP, block), ``model`` (GPT: forward, init,
accounting, naive generate, attention maps), ``kv_cache`` (the cache protocol and a
simple reference cache).
"""
