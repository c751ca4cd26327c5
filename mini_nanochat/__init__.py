"""mini-nanochat: the finished components of every phase, in one import.

    from mini_nanochat import BPETokenizer, render_conversation, GPT, GPTConfig, MuonAdamW

The real code lives in ``phases/phaseN_*/``; this package re-exports it, mounts the phases'
commands as the ``mini-nanochat`` command line (``cli.py``) and runs the end-to-end pipeline
(``pipeline.py``). ``pretrain.py`` re-exports the pretraining run that Phase 5 composes from
Phases 2-5. Later phases add their components here as they land.
"""
from phases.common.console import UserError
from phases.common.paths import base_dir
from phases.phase0_tokenizer.bpe import SPECIAL_TOKENS, SPLIT_PATTERN, BPETokenizer
from phases.phase0_tokenizer.chat import ConversationError, render_conversation, render_for_completion
from phases.phase0_tokenizer.corpus import build_embedded_corpus, ensure_embedded_corpus
from phases.phase0_tokenizer.shards import iter_texts, list_shards
from phases.phase1_transformer.config import GPTConfig, compute_dtype, preset
from phases.phase1_transformer.kv_cache import SimpleKVCache
from phases.phase1_transformer.model import GPT
from phases.phase2_training.load import find_checkpoint, load_model, read_meta
from phases.phase2_training.recipe import Recipe, Runtime
from phases.phase3_optimizers.adamw import AdamW
from phases.phase3_optimizers.muon import MuonAdamW, orthogonalize
from phases.phase3_optimizers.scaling import depth_scaling
from phases.phase4_ddp.zero import ZeroMuonAdamW
from phases.phase5_data.download import download
from phases.phase5_data.loader import PackedLoader
from phases.phase5_data.pretrain import PretrainConfig, pretrain, pretrain_recipe
from phases.phase6_inference.calculator import calculate
from phases.phase6_inference.engine import Engine, SamplingParams
from phases.phase6_inference.kv_cache import KVCache
from phases.phase6_inference.session import Session
from phases.phase8_sft.rl import RLConfig, rl
from phases.phase8_sft.rl import load_config as load_rl_config
from phases.phase8_sft.rl import recipe as rl_recipe
from phases.phase8_sft.sft import SFTConfig, sft
from phases.phase8_sft.sft import load_config as load_sft_config
from phases.phase8_sft.sft import recipe as sft_recipe

__version__ = "0.1.0"

__all__ = [
    "BPETokenizer", "SPECIAL_TOKENS", "SPLIT_PATTERN",
    "render_conversation", "render_for_completion", "ConversationError",
    "build_embedded_corpus", "ensure_embedded_corpus", "iter_texts", "list_shards",
    "GPT", "GPTConfig", "preset", "compute_dtype", "SimpleKVCache",
    "load_model", "find_checkpoint", "read_meta", "Recipe", "Runtime",
    "AdamW", "MuonAdamW", "orthogonalize", "depth_scaling", "ZeroMuonAdamW",
    "download", "PackedLoader", "PretrainConfig", "pretrain", "pretrain_recipe",
    "Engine", "SamplingParams", "KVCache", "Session", "calculate",
    "sft", "SFTConfig", "load_sft_config", "sft_recipe", "rl", "RLConfig", "load_rl_config", "rl_recipe",
    "UserError", "base_dir", "__version__",
]
