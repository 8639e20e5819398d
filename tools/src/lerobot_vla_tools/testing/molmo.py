"""Tiny Molmo-style checkpoints for tests, the demo and the benchmarks.

* ``build_tiny_molmo(path)``: our layout (``MolmoBackbone.save_pretrained``: ``molmo_backbone.json``, ``vision/``
  CLIPVisionModel, ``language_model/`` Qwen2Model, ``connector.safetensors``, tokenizer), loadable with
  ``MolmoBackbone.from_pretrained(path)``.
* ``molmo_original_state_dict(spec)``: random weights in the key layout of the released Molmo code (HF
  ``allenai/Molmo-7B-D-0924`` = ``"model." + `` the A1/Molmo codebase keys: fused ``att_proj``/``ff_proj``,
  linear patch embedding, ``image_pooling_2d``, ``image_projector``, ``wte.embedding``/``new_embedding``), used to
  test the converters without the 7B weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

from .tokenizers import train_byte_level_bpe


@dataclass(frozen=True)
class TinyMolmoSpec:
    """Sizes of a tiny Molmo-style backbone (real CLIP ViT + connector + Qwen2 classes).

    ``image_size / patch_size`` patches per side, pooled 2x2: 56/14 -> 4x4 patches -> 2x2 = 4 image tokens per view.
    """

    image_size: int = 56
    patch_size: int = 14
    vision_hidden_size: int = 32
    vision_layers: int = 3
    vision_heads: int = 2
    vision_feature_layers: tuple[int, ...] = (-1, -2)
    projector_hidden_size: int = 64
    text_hidden_size: int = 64
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate_size: int = 128
    vocab_size: int = 512
    additional_vocab_size: int = 128
    seed: int = 0


#: A1's tiny flow-matching expert in the tiny Molmo's KV geometry (2 KV heads x 16)
TINY_A1_EXPERT = {
    "expert_hidden_size": 32,
    "expert_num_heads": 2,
    "expert_intermediate_size": 64,
    "chunk_size": 8,
}


def _tokenizer(spec: TinyMolmoSpec) -> PreTrainedTokenizerFast:
    return train_byte_level_bpe(vocab_size=spec.vocab_size)


def build_tiny_molmo(path: str | Path, spec: TinyMolmoSpec | None = None, **overrides) -> Path:
    """Build a random-weight Molmo-style backbone and ``save_pretrained`` it (with its tokenizer) into ``path``."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2Config, Qwen2Model

    from lerobot_vla_plugins.backbones.molmo import MolmoBackbone, MolmoConfig, MolmoConnector

    spec = TinyMolmoSpec(**{**asdict(spec or TinyMolmoSpec()), **overrides})
    torch.manual_seed(spec.seed)
    tokenizer = _tokenizer(spec)
    base_vocab = len(tokenizer)
    vision = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=spec.vision_hidden_size,
            intermediate_size=2 * spec.vision_hidden_size,
            num_hidden_layers=spec.vision_layers,
            num_attention_heads=spec.vision_heads,
            image_size=spec.image_size,
            patch_size=spec.patch_size,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
    ).eval()
    lm = Qwen2Model(
        Qwen2Config(
            hidden_size=spec.text_hidden_size,
            intermediate_size=spec.text_intermediate_size,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            num_key_value_heads=spec.text_kv_heads,
            vocab_size=base_vocab + spec.additional_vocab_size,
            max_position_embeddings=4096,
            rope_theta=1e6,
            rms_norm_eps=1e-6,
        )
    ).eval()
    cfg = MolmoConfig(
        vision_feature_layers=list(spec.vision_feature_layers),
        vision_num_layers=spec.vision_layers,
        pooling=[2, 2],
        projector_hidden_size=spec.projector_hidden_size,
        image_size=spec.image_size,
        base_vocab_size=base_vocab,
        additional_vocab_size=spec.additional_vocab_size,
    )
    connector = MolmoConnector(cfg, spec.vision_hidden_size, spec.vision_heads, spec.text_hidden_size)
    with torch.no_grad():
        for p in connector.parameters():
            p.normal_(0.0, 0.05)
    backbone = MolmoBackbone(vision, connector, lm, tokenizer, cfg)
    return backbone.save_pretrained(path)


def molmo_original_state_dict(
    spec: TinyMolmoSpec | None = None, prefix: str = "model.", **overrides
) -> dict[str, torch.Tensor]:
    """Random weights of a tiny Molmo in the released Molmo/A1 key layout (``prefix`` "model." = HF Molmo-7B-D,
    "" = the A1 codebase's ``model.pt``)."""
    spec = TinyMolmoSpec(**{**asdict(spec or TinyMolmoSpec()), **overrides})
    g = torch.Generator().manual_seed(spec.seed)

    def r(*shape, std=0.05):
        return torch.randn(*shape, generator=g) * std

    dv, d = spec.vision_hidden_size, spec.text_hidden_size
    ps, n_pos = spec.patch_size, (spec.image_size // spec.patch_size) ** 2 + 1
    feat = dv * len(spec.vision_feature_layers)
    hd = d // spec.text_heads
    kv = spec.text_kv_heads * hd
    base_vocab = len(_tokenizer(spec))
    sd: dict[str, torch.Tensor] = {}
    v = f"{prefix}vision_backbone."
    sd[v + "image_vit.class_embedding"] = r(dv)
    sd[v + "image_vit.positional_embedding"] = r(n_pos, dv)
    sd[v + "image_vit.patch_embedding.weight"] = r(dv, ps * ps * 3)
    sd[v + "image_vit.pre_ln.weight"] = 1 + r(dv)
    sd[v + "image_vit.pre_ln.bias"] = r(dv)
    for i in range(spec.vision_layers):
        blk = f"{v}image_vit.transformer.resblocks.{i}."
        for w in ("wq", "wk", "wv", "wo"):
            sd[blk + f"attention.{w}.weight"] = r(dv, dv)
            sd[blk + f"attention.{w}.bias"] = r(dv)
        sd[blk + "feed_forward.w1.weight"] = r(2 * dv, dv)
        sd[blk + "feed_forward.w1.bias"] = r(2 * dv)
        sd[blk + "feed_forward.w2.weight"] = r(dv, 2 * dv)
        sd[blk + "feed_forward.w2.bias"] = r(dv)
        for norm in ("attention_norm", "ffn_norm"):
            sd[blk + f"{norm}.weight"] = 1 + r(dv)
            sd[blk + f"{norm}.bias"] = r(dv)
    sd[v + "pad_embed"] = r(2, feat)
    for w in ("wq", "wk", "wv"):
        sd[v + f"image_pooling_2d.{w}.weight"] = r(dv, feat)
        sd[v + f"image_pooling_2d.{w}.bias"] = r(dv)
    sd[v + "image_pooling_2d.wo.weight"] = r(dv, dv)
    sd[v + "image_pooling_2d.wo.bias"] = r(dv)
    sd[v + "image_projector.w1.weight"] = r(spec.projector_hidden_size, dv)
    sd[v + "image_projector.w3.weight"] = r(spec.projector_hidden_size, dv)
    sd[v + "image_projector.w2.weight"] = r(d, spec.projector_hidden_size)
    t = f"{prefix}transformer."
    sd[t + "wte.embedding"] = r(base_vocab, d, std=0.5)
    sd[t + "wte.new_embedding"] = r(spec.additional_vocab_size, d, std=0.5)
    for i in range(spec.text_layers):
        blk = f"{t}blocks.{i}."
        sd[blk + "att_proj.weight"] = r(d + 2 * kv, d)
        sd[blk + "att_proj.bias"] = r(d + 2 * kv)
        sd[blk + "attn_out.weight"] = r(d, d)
        sd[blk + "ff_proj.weight"] = r(2 * spec.text_intermediate_size, d)
        sd[blk + "ff_out.weight"] = r(d, spec.text_intermediate_size)
        sd[blk + "attn_norm.weight"] = 1 + r(d)
        sd[blk + "ff_norm.weight"] = 1 + r(d)
    sd[t + "ln_f.weight"] = 1 + r(d)
    sd[t + "ff_out.weight"] = r(base_vocab, d)  # the LM head, unused by a VLA backbone
    return sd


def molmo_original_config(spec: TinyMolmoSpec | None = None, **overrides) -> dict:
    """The fields of a Molmo HF ``config.json`` that the converter reads, for ``spec``."""
    spec = TinyMolmoSpec(**{**asdict(spec or TinyMolmoSpec()), **overrides})
    base_vocab = len(_tokenizer(spec))
    return {
        "model_type": "molmo",
        "hidden_size": spec.text_hidden_size,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "num_hidden_layers": spec.text_layers,
        "intermediate_size": 2 * spec.text_intermediate_size,
        "vocab_size": base_vocab,
        "embedding_size": base_vocab,
        "additional_vocab_size": spec.additional_vocab_size,
        "max_position_embeddings": 4096,
        "rope_theta": 1e6,
        "layer_norm_eps": 1e-6,
        "qkv_bias": True,
        "attention_layer_norm": False,
        "norm_after": False,
        "weight_tying": False,
    }


def tiny_molmo_tokenizer(spec: TinyMolmoSpec | None = None) -> PreTrainedTokenizerFast:
    """The tokenizer ``build_tiny_molmo`` and ``molmo_original_state_dict`` size their vocabulary for."""
    return _tokenizer(spec or TinyMolmoSpec())
