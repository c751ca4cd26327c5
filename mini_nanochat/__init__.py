"""mini-nanochat: the finished components of every phase, in one import.

    from mini_nanochat import BPETokenizer, render_conversation, GPT, GPTConfig

The real code lives in ``phases/phaseN_*/``; this package re-exports it, holds the
``mini-nanochat`` command line (``cli.py``) and the end-to-end pipeline (``pipeline.py``).
Later phases add their components here as they land (the optimizers, …).
"""
from phases.phase0_tokenizer.bpe import SPECIAL_TOKENS, SPLIT_PATTERN, BPETokenizer
from phases.phase0_tokenizer.chat import ConversationError, render_conversation, render_for_completion
from phases.phase0_tokenizer.common import UserError, base_dir
from phases.phase0_tokenizer.corpus import build_embedded_corpus, ensure_embedded_corpus, iter_texts
from phases.phase1_transformer.config import GPTConfig, compute_dtype, preset
from phases.phase1_transformer.kv_cache import SimpleKVCache
from phases.phase1_transformer.model import GPT

__version__ = "0.1.0"

__all__ = [
    "BPETokenizer", "SPECIAL_TOKENS", "SPLIT_PATTERN",
    "render_conversation", "render_for_completion", "ConversationError",
    "build_embedded_corpus", "ensure_embedded_corpus", "iter_texts",
    "GPT", "GPTConfig", "preset", "compute_dtype", "SimpleKVCache",
    "UserError", "base_dir", "__version__",
]
