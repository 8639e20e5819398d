"""Tiny Prismatic directories (DINOv2-with-registers + SigLIP + fused projector + Qwen2, with a tokenizer).

Same classes and layout as the paper-size backbone (``lerobot_vla_plugins.backbones.prismatic``), at a size that
builds, saves and loads in about a second, so tests, the demo and the benchmarks go through the real
``PrismaticBackbone.from_pretrained`` path offline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .tokenizers import train_byte_level_bpe


@dataclass(frozen=True)
class TinyPrismaticSpec:
    """Sizes of a tiny Prismatic VLM. ``*_layers`` are the depths of the *published-style* towers; the saved
    towers keep ``depth - 1`` blocks (the second-to-last block's output is the feature), as the paper-size
    backbone does. 32 px images with 8 px patches give 16 image tokens per view."""

    image_size: int = 32
    patch_size: int = 8
    dino_hidden_size: int = 32
    dino_layers: int = 3
    dino_heads: int = 2
    num_register_tokens: int = 4
    siglip_hidden_size: int = 48
    siglip_layers: int = 3
    siglip_heads: int = 2
    text_hidden_size: int = 64
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate_size: int = 128
    max_position_embeddings: int = 512
    vocab_size: int = 512
    seed: int = 0


def build_tiny_prismatic(path: str | Path, spec: TinyPrismaticSpec | None = None, **overrides) -> Path:
    """Build a random-weight Prismatic backbone with its tokenizer and save it as a Prismatic directory.

    The tokenizer is a byte-level BPE with the Qwen chat markers (``<|im_start|>``, ``<|im_end|>``,
    ``<|endoftext|>``) that ``prismatic_prompt`` uses.

    Returns:
        ``path``: load it with ``PrismaticBackbone.from_pretrained(path)``.
    """
    import torch
    from transformers import (
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
        Qwen2Config,
        Qwen2Model,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    from lerobot_vla_plugins.backbones.prismatic import (
        PrismaticBackbone,
        PrismaticImageSpec,
        PrismaticProjector,
    )

    spec = TinyPrismaticSpec(**{**asdict(spec or TinyPrismaticSpec()), **overrides})
    path = Path(path)
    torch.manual_seed(spec.seed)
    tokenizer = train_byte_level_bpe(vocab_size=spec.vocab_size)
    dino = Dinov2WithRegistersModel(
        Dinov2WithRegistersConfig(
            hidden_size=spec.dino_hidden_size,
            num_hidden_layers=spec.dino_layers - 1,
            num_attention_heads=spec.dino_heads,
            image_size=spec.image_size,
            patch_size=spec.patch_size,
            num_register_tokens=spec.num_register_tokens,
        )
    )
    siglip = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=spec.siglip_hidden_size,
            intermediate_size=2 * spec.siglip_hidden_size,
            num_hidden_layers=spec.siglip_layers - 1,
            num_attention_heads=spec.siglip_heads,
            image_size=spec.image_size,
            patch_size=spec.patch_size,
            vision_use_head=False,
        )
    )
    llm = Qwen2Model(
        Qwen2Config(
            hidden_size=spec.text_hidden_size,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            num_key_value_heads=spec.text_kv_heads,
            intermediate_size=spec.text_intermediate_size,
            vocab_size=len(tokenizer),
            max_position_embeddings=spec.max_position_embeddings,
            tie_word_embeddings=True,
        )
    )
    projector = PrismaticProjector(spec.dino_hidden_size + spec.siglip_hidden_size, spec.text_hidden_size)
    backbone = PrismaticBackbone(
        dino.eval(),
        siglip.eval(),
        projector,
        llm.eval(),
        tokenizer,
        PrismaticImageSpec(image_size=spec.image_size),
    )
    backbone.save_pretrained(path)
    return path
