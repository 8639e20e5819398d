"""Testing kit: tiny real backbones with their tokenizers, saved with ``save_pretrained`` so that tests,
the demo and the benchmarks exercise the real ``from_pretrained`` path offline; a cached real Meta-World
dataset; and a runner for the installed ``lerobot-*`` commands."""

from .fixtures import TEST_TASK, cached_metaworld_dataset, lerobot_env, run_cli
from .internvl import TinyInternVLSpec, build_tiny_internvl
from .tokenizers import DEFAULT_SPECIAL_TOKENS, train_byte_level_bpe

__all__ = [
    "DEFAULT_SPECIAL_TOKENS",
    "TEST_TASK",
    "TinyInternVLSpec",
    "build_tiny_internvl",
    "cached_metaworld_dataset",
    "lerobot_env",
    "run_cli",
    "train_byte_level_bpe",
]
