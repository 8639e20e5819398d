"""Released Prismatic weights (timm-keyed vision towers, fused projector, HF Qwen2/Llama) -> a native
``PrismaticBackbone`` (transformers ``Dinov2WithRegistersModel`` + ``SiglipVisionModel`` + ``Qwen2Model``).

Used by the VLA-Adapter converter for the merged VLA checkpoints (``vision_backbone.featurizer.*``,
``vision_backbone.fused_featurizer.*``, ``projector.fc{1,2,3}.*``, ``language_model.*``) and for the base VLM
(``prism-qwen25-extra-dinosiglip-224px-0_5b``: ``projector.projector.{0,2,4}.*``, ``llm_backbone.llm.*``,
``vision_backbone.{dino,siglip}_featurizer.*``).

Key facts of the released towers (timm ``vit_large_patch14_reg4_dinov2.lvd142m`` and
``vit_so400m_patch14_siglip_224``):

* fused ``attn.qkv`` -> split into query/key/value; ``attn.proj`` -> the output projection;
* DINOv2 has no position embedding on its CLS/register tokens (``no_embed_class``): HF's CLS slot gets zeros;
  LayerScale weights are ``ls{1,2}.gamma`` (renamed ``scale_factor`` in the HF export);
* both towers use exact (erf) GELU and LayerNorm eps 1e-6 in timm, so the SigLIP config is written with
  ``hidden_act="gelu"`` (the published HF SigLIP uses the tanh approximation);
* only blocks ``0 .. depth-2`` are kept (the feature is the second-to-last block's output).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

    from lerobot_vla_plugins.backbones.prismatic import PrismaticBackbone


#: attention heads of the timm towers Prismatic uses (not recoverable from weight shapes)
TIMM_NUM_HEADS = {
    "vit_large_patch14_reg4_dinov2": 16,
    "vit_so400m_patch14_siglip_224": 16,
}


def timm_heads(model_id: str) -> int:
    base = model_id.split(".")[0]
    if base not in TIMM_NUM_HEADS:
        raise ValueError(f"unknown timm tower {model_id!r}; known: {sorted(TIMM_NUM_HEADS)}")
    return TIMM_NUM_HEADS[base]


def sub_state_dict(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Entries under ``prefix`` with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _depth(sd: dict[str, Tensor]) -> int:
    ids = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not ids:
        raise ValueError("no transformer blocks (blocks.<i>.*) in the tower's weights")
    return max(ids) + 1


def _split_qkv(w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(w.chunk(3, dim=0))  # timm packs (q; k; v) along the output dim


def _resample_grid(pos: Tensor, new_grid: int) -> Tensor:
    """(1, g*g, D) -> (1, new_grid^2, D), bicubic with antialiasing (timm's ``resample_abs_pos_embed``)."""
    n, d = pos.shape[1], pos.shape[2]
    g = int(math.isqrt(n))
    if g * g != n:
        raise ValueError(f"position embedding of {n} patches is not a square grid")
    if g == new_grid:
        return pos
    grid = pos.reshape(1, g, g, d).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", antialias=True, align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d).to(pos.dtype)


def dinov2_from_timm(
    sd: dict[str, Tensor], num_heads: int, image_size: int
) -> tuple[PretrainedConfig, dict[str, Tensor]]:
    """timm DINOv2-with-registers weights -> (Dinov2WithRegistersConfig, state dict), truncated to depth-1 blocks."""
    from transformers import Dinov2WithRegistersConfig

    depth = _depth(sd)
    dim = sd["cls_token"].shape[-1]
    patch = sd["patch_embed.proj.weight"].shape[-1]
    if image_size % patch:
        raise ValueError(f"image size {image_size} is not a multiple of the DINOv2 patch size {patch}")
    ls = "scale_factor" if "blocks.0.ls1.scale_factor" in sd else "gamma"
    hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
    if hidden % dim:
        raise ValueError(f"DINOv2 MLP width {hidden} is not a multiple of its width {dim}")
    config = Dinov2WithRegistersConfig(
        hidden_size=dim,
        num_hidden_layers=depth - 1,
        num_attention_heads=num_heads,
        mlp_ratio=hidden // dim,
        image_size=image_size,
        patch_size=patch,
        num_register_tokens=sd["reg_token"].shape[1],
        layerscale_value=1.0,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
        qkv_bias=True,
    )
    pos = _resample_grid(sd["pos_embed"], image_size // patch)
    out = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.register_tokens": sd["reg_token"],
        "embeddings.mask_token": torch.zeros(1, dim, dtype=pos.dtype),
        "embeddings.position_embeddings": torch.cat([torch.zeros(1, 1, dim, dtype=pos.dtype), pos], dim=1),
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "layernorm.weight": sd["norm.weight"],
        "layernorm.bias": sd["norm.bias"],
    }
    for i in range(depth - 1):
        b, h = f"blocks.{i}.", f"encoder.layer.{i}."
        for t in ("weight", "bias"):
            q, k, v = _split_qkv(sd[b + f"attn.qkv.{t}"])
            out |= {
                h + f"norm1.{t}": sd[b + f"norm1.{t}"],
                h + f"norm2.{t}": sd[b + f"norm2.{t}"],
                h + f"attention.attention.query.{t}": q,
                h + f"attention.attention.key.{t}": k,
                h + f"attention.attention.value.{t}": v,
                h + f"attention.output.dense.{t}": sd[b + f"attn.proj.{t}"],
                h + f"mlp.fc1.{t}": sd[b + f"mlp.fc1.{t}"],
                h + f"mlp.fc2.{t}": sd[b + f"mlp.fc2.{t}"],
            }
        out[h + "layer_scale1.lambda1"] = sd[b + f"ls1.{ls}"]
        out[h + "layer_scale2.lambda1"] = sd[b + f"ls2.{ls}"]
    return config, out


def siglip_from_timm(
    sd: dict[str, Tensor], num_heads: int, image_size: int
) -> tuple[PretrainedConfig, dict[str, Tensor]]:
    """timm SigLIP weights -> (SiglipVisionConfig, state dict), truncated to depth-1 blocks, no pooling head."""
    from transformers import SiglipVisionConfig

    depth = _depth(sd)
    dim = sd["pos_embed"].shape[-1]
    patch = sd["patch_embed.proj.weight"].shape[-1]
    if image_size % patch:
        raise ValueError(f"image size {image_size} is not a multiple of the SigLIP patch size {patch}")
    config = SiglipVisionConfig(
        hidden_size=dim,
        intermediate_size=sd["blocks.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=depth - 1,
        num_attention_heads=num_heads,
        image_size=image_size,
        patch_size=patch,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        vision_use_head=False,
    )
    pos = _resample_grid(sd["pos_embed"], image_size // patch)
    p = "vision_model."
    out = {
        p + "embeddings.patch_embedding.weight": sd["patch_embed.proj.weight"],
        p + "embeddings.patch_embedding.bias": sd["patch_embed.proj.bias"],
        p + "embeddings.position_embedding.weight": pos[0],
        p + "post_layernorm.weight": sd["norm.weight"],
        p + "post_layernorm.bias": sd["norm.bias"],
    }
    for i in range(depth - 1):
        b, h = f"blocks.{i}.", f"{p}encoder.layers.{i}."
        for t in ("weight", "bias"):
            q, k, v = _split_qkv(sd[b + f"attn.qkv.{t}"])
            out |= {
                h + f"layer_norm1.{t}": sd[b + f"norm1.{t}"],
                h + f"layer_norm2.{t}": sd[b + f"norm2.{t}"],
                h + f"self_attn.q_proj.{t}": q,
                h + f"self_attn.k_proj.{t}": k,
                h + f"self_attn.v_proj.{t}": v,
                h + f"self_attn.out_proj.{t}": sd[b + f"attn.proj.{t}"],
                h + f"mlp.fc1.{t}": sd[b + f"mlp.fc1.{t}"],
                h + f"mlp.fc2.{t}": sd[b + f"mlp.fc2.{t}"],
            }
    return config, out


def projector_weights(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Fused projector weights in either released naming (``fc{1,2,3}`` or ``projector.{0,2,4}``) -> fc1/fc2/fc3."""
    if "fc1.weight" in sd:
        return {k: v for k, v in sd.items() if k.split(".")[0] in ("fc1", "fc2", "fc3")}
    names = {"projector.0": "fc1", "projector.2": "fc2", "projector.4": "fc3"}
    out = {}
    for k, v in sd.items():
        head, _, leaf = k.rpartition(".")
        if head in names:
            out[f"{names[head]}.{leaf}"] = v
    if len(out) != 6:
        raise ValueError("fused projector weights (fc1/fc2/fc3 or projector.0/2/4) not found")
    return out


def build_prismatic_backbone(
    dino_sd: dict[str, Tensor],
    siglip_sd: dict[str, Tensor],
    projector_sd: dict[str, Tensor],
    llm_sd: dict[str, Tensor],
    text_config: dict,
    tokenizer: PreTrainedTokenizerBase,
    timm_model_ids: tuple[str, str] = (
        "vit_large_patch14_reg4_dinov2.lvd142m",
        "vit_so400m_patch14_siglip_224",
    ),
    image_size: int = 224,
    dtype: torch.dtype = torch.float32,
) -> PrismaticBackbone:
    """Assemble a ``PrismaticBackbone`` from released weights.

    Args:
        dino_sd / siglip_sd: timm-keyed tower weights (prefix removed).
        projector_sd: fused projector weights (either naming).
        llm_sd: decoder weights keyed like ``Qwen2Model`` (``embed_tokens``, ``layers.<i>``, ``norm``).
        text_config: the language model's HF config dict (``model_type`` included).
        tokenizer: the language model's tokenizer.
    """
    from transformers import AutoConfig, AutoModel, Dinov2WithRegistersModel, SiglipVisionModel

    from lerobot_vla_plugins.backbones.prismatic import (
        PrismaticBackbone,
        PrismaticImageSpec,
        PrismaticProjector,
    )

    dino_cfg, dino_w = dinov2_from_timm(dino_sd, timm_heads(timm_model_ids[0]), image_size)
    siglip_cfg, siglip_w = siglip_from_timm(siglip_sd, timm_heads(timm_model_ids[1]), image_size)
    text = dict(text_config)
    llm_cfg = AutoConfig.for_model(text.pop("model_type"), **text)
    llm_cfg.vocab_size = llm_sd["embed_tokens.weight"].shape[0]
    dino = Dinov2WithRegistersModel(dino_cfg)
    siglip = SiglipVisionModel(siglip_cfg)
    llm = AutoModel.from_config(llm_cfg)
    for module, weights, name in (
        (dino, dino_w, "DINOv2"),
        (siglip, siglip_w, "SigLIP"),
        (llm, llm_sd, "language model"),
    ):
        missing, unexpected = module.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(f"{name} weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    projector = PrismaticProjector(dino_cfg.hidden_size + siglip_cfg.hidden_size, llm_cfg.hidden_size)
    projector.load_state_dict(projector_weights(projector_sd))
    backbone = PrismaticBackbone(
        dino.eval(),
        siglip.eval(),
        projector,
        llm.eval(),
        tokenizer,
        PrismaticImageSpec(image_size=image_size),
    )
    return backbone.to(dtype)
