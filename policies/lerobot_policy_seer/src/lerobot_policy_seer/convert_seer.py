"""``lerobot-seer-convert``: a released Seer checkpoint (OpenRobotLab/Seer ``{epoch}.pth``) -> a LeRobot ``seer``
policy directory (``config.json``, ``model.safetensors``, pre/post-processors) usable by ``lerobot-eval``, as a
teacher (``--policy.teacher_path``) or for fine-tuning (``--policy.path``).

The released files hold the trainable parameters only (``get_checkpoint``: no CLIP, no MAE), with DDP's
``module.`` prefix. The frozen encoders come from ``--vision_encoder_name`` / ``--text_encoder_name``; Seer's MAE
is the official ``mae_pretrain_vit_base.pth``, which differs from the Hub's ``facebook/vit-mae-base`` (converted
from MAE's visualisation checkpoint), so pass ``--mae_checkpoint=mae_pretrain_vit_base.pth`` to reproduce the
released model exactly. The released models read raw states and actions (CALVIN / LIBERO actions already lie
in [-1, 1]), so the converted policy uses IDENTITY normalisation for both (a VITA-VLA student aligned to it
hands it the raw state: ``lerobot_vla_plugins.processors.renormalize``).

Every released tensor is checked first (``lerobot_vla_plugins.convert.checks.check_weights``): a per-module
summary is printed and non-finite or exploding weights are refused (``--allow_bad_weights=true`` converts anyway).

Usage::

    lerobot-seer-convert --checkpoint=Seer-Large-PT-ep5-FT-ep12.pth --mae_checkpoint=mae_pretrain_vit_base.pth \\
        --output_dir=outputs/seer_large_calvin
    lerobot-seer-convert --checkpoint=38.pth --gripper_width=true --history_length=7 --output_dir=outputs/seer_libero
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .configuration_seer import SEER_SIZES, SeerConfig

#: The released preprocessing (OpenAI CLIP ``preprocess``): PIL bicubic resize + centre crop to 224 px.
RELEASED_IMAGE_SIZE = 224

# released key -> our key (inside SeerPolicy), applied in order; None drops the key
_RENAMES: list[tuple[str, str | None]] = [
    (r"^text_projector\.", "model.text_projector."),
    (r"^arm_state_encoder\.", "model.state_encoder.arm."),
    (r"^gripper_state_encoder\.", "model.state_encoder.gripper."),
    (r"^state_projector\.", "model.state_encoder.projector."),
    (r"^perceiver_resampler\.layers\.(\d+)\.0\.", r"model.resampler.layers.\1.attn."),
    (r"^perceiver_resampler\.layers\.(\d+)\.1\.0\.", r"model.resampler.layers.\1.ff.norm."),
    (r"^perceiver_resampler\.layers\.(\d+)\.1\.1\.", r"model.resampler.layers.\1.ff.fc1."),
    (r"^perceiver_resampler\.layers\.(\d+)\.1\.3\.", r"model.resampler.layers.\1.ff.fc2."),
    (r"^perceiver_resampler\.", "model.resampler."),
    (r"^image_primary_projector\.", "model.image_projectors.0."),
    (r"^image_wrist_projector\.", "model.image_projectors.1."),
    (r"^cls_token_primary_projector\.", "model.cls_projectors.0."),
    (r"^cls_token_wrist_projector\.", "model.cls_projectors.1."),
    (r"^embedding_layer_norm\.", "model.embedding_norm."),
    (r"^transformer_backbone\.", "model.trunk."),
    (r"^action_decoder\.", "model.action_head.decoder."),
    (r"^arm_action_decoder\.0\.", "model.action_head.arm."),
    (r"^gripper_action_decoder\.0\.", "model.action_head.gripper."),
    (r"^mask_token$", "model.foresight_decoder.mask_token"),
    (r"^image_decoder_obs_pred_projector\.", "model.foresight_decoder.projector."),
    (r"^image_decoder_norm\.", "model.foresight_decoder.norm."),
    (r"^image_decoder_pred\.", "model.foresight_decoder.pred."),
    # unused by the released forward, or rebuilt by us (fixed tables, the mask)
    (r"^(action_pose_encoder|action_gripper_position_encoder|action_projector|recon_\w+)\.", None),
    (r"^(clip_model|attention_mask|image_decoder_position_embedding)\b", None),
]
_TIMM_BLOCK = [  # timm ViT Block -> transformers ViTMAELayer
    ("norm1.", "layernorm_before."),
    ("attn.proj.", "attention.output.dense."),
    ("norm2.", "layernorm_after."),
    ("mlp.fc1.", "intermediate.dense."),
    ("mlp.fc2.", "output.dense."),
]


def _split_qkv(prefix: str, suffix: str, tensor: Tensor) -> dict[str, Tensor]:
    """timm's fused qkv (3D, ...) -> query / key / value (timm reshapes the output as (3, heads, head_dim))."""
    q, k, v = tensor.chunk(3, dim=0)
    return {
        f"{prefix}attention.attention.query.{suffix}": q,
        f"{prefix}attention.attention.key.{suffix}": k,
        f"{prefix}attention.attention.value.{suffix}": v,
    }


def convert_timm_vit_block(prefix_in: str, prefix_out: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The tensors of one timm ViT ``Block`` under ``prefix_in`` renamed to a ``ViTMAELayer`` under ``prefix_out``."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix_in):
            continue
        rest = key[len(prefix_in) :]
        if rest.startswith("attn.qkv."):
            out.update(_split_qkv(prefix_out, rest.rsplit(".", 1)[1], value))
            continue
        for old, new in _TIMM_BLOCK:
            if rest.startswith(old):
                out[prefix_out + new + rest[len(old) :]] = value
                break
        else:
            raise KeyError(f"unexpected tensor {key} in a ViT block")
    return out


def convert_mae_state_dict(mae: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official MAE encoder weights (timm names, ``mae_pretrain_vit_base.pth['model']``) -> ``ViTMAEModel`` names.
    The MAE decoder (``decoder_*``, ``mask_token``) is not part of the encoder and is dropped."""
    out = {
        "embeddings.cls_token": mae["cls_token"],
        "embeddings.position_embeddings": mae["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": mae["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": mae["patch_embed.proj.bias"],
        "layernorm.weight": mae["norm.weight"],
        "layernorm.bias": mae["norm.bias"],
    }
    blocks = sorted({int(m.group(1)) for k in mae if (m := re.match(r"blocks\.(\d+)\.", k))})
    for i in blocks:
        out.update(convert_timm_vit_block(f"blocks.{i}.", f"encoder.layer.{i}.", mae))
    return out


def convert_state_dict(released: dict[str, Tensor], history_length: int) -> dict[str, Tensor]:
    """Released ``SeerAgent`` parameters (``module.`` prefix optional) -> ``SeerPolicy`` state-dict entries.

    Raises:
        ValueError: a tensor the mapping does not know (not a Seer checkpoint), or a history longer than the
            checkpoint's position embedding.
    """
    state = {k.removeprefix("module."): v for k, v in released.items()}
    out: dict[str, Tensor] = {}
    for i in sorted({int(m.group(1)) for k in state if (m := re.match(r"image_decoder\.(\d+)\.", k))}):
        out.update(
            convert_timm_vit_block(f"image_decoder.{i}.", f"model.foresight_decoder.blocks.{i}.", state)
        )
    mae = {k.removeprefix("vision_encoder."): v for k, v in state.items() if k.startswith("vision_encoder.")}
    if mae:  # a checkpoint saved with every parameter (get_checkpoint_all_param) carries the MAE too
        out.update({"model.vision_encoder." + k: v for k, v in convert_mae_state_dict(mae).items()})
    unknown = []
    for key, value in state.items():
        if key.startswith(("image_decoder.", "vision_encoder.")):
            continue
        if key == "action_pred_token":  # (1, 1, K, D)
            out["model.action_queries"] = value.reshape(value.shape[-2], value.shape[-1])
            continue
        if key == "obs_tokens":  # (1, 1, V * N_obs, D)
            out["model.foresight_queries"] = value.reshape(value.shape[-2], value.shape[-1])
            continue
        if (
            key == "transformer_backbone_position_embedding"
        ):  # (1, S', 1, D); released training slices it to S
            if value.shape[1] < history_length:
                raise ValueError(
                    f"history_length={history_length} but the checkpoint's position embedding covers {value.shape[1]} steps; "
                    f"pass --history_length <= {value.shape[1]}"
                )
            out["model.step_embedding"] = value[0, :history_length, 0]
            continue
        for pattern, replacement in _RENAMES:
            if re.search(pattern, key):
                if replacement is not None:
                    out[re.sub(pattern, replacement, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"not a released Seer checkpoint: unknown tensors {unknown[:8]}{' ...' if len(unknown) > 8 else ''}"
        )
    return out


def infer_config(state: dict[str, Tensor], cfg: ConvertSeerConfig) -> SeerConfig:
    """A ``SeerConfig`` whose sizes match the released tensors (heads cannot be read from weights: by size)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    required = (
        "text_projector.weight",
        "perceiver_resampler.latents",
        "obs_tokens",
        "action_pred_token",
        "transformer_backbone_position_embedding",
        "arm_action_decoder.0.weight",
    )
    absent = [k for k in required if k not in state]
    if absent:
        raise ValueError(f"not a released Seer checkpoint: no {absent} (keys look like {sorted(state)[:5]})")
    hidden = state["text_projector.weight"].shape[0]
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer_backbone.h.")})
    queries = state["perceiver_resampler.latents"].shape[0]
    inner = state["perceiver_resampler.layers.0.0.to_q.weight"].shape[0]
    views = 2
    foresight = state["obs_tokens"].shape[-2] // views
    size = "large" if hidden == SEER_SIZES["large"][0] else "base"
    heads = cfg.num_heads or (SEER_SIZES[size][2] if hidden == SEER_SIZES[size][0] else None)
    if heads is None:
        raise ValueError(f"a {hidden}-wide trunk is neither Seer nor Seer-Large: pass --num_heads")
    history = cfg.history_length or state["transformer_backbone_position_embedding"].shape[1]
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature

    arm_dim = state["arm_action_decoder.0.weight"].shape[0]
    state_dim = 6 + (2 if cfg.gripper_width else 1)
    seer = SeerConfig(
        size=size,
        hidden_dim=hidden,
        num_layers=layers,
        num_heads=heads,
        num_resampler_queries=queries,
        num_foresight_tokens=foresight,
        history_length=history,
        action_pred_steps=state["action_pred_token"].shape[-2],
        resampler_depth=len({k.split(".")[2] for k in state if k.startswith("perceiver_resampler.layers.")}),
        resampler_head_dim=inner // cfg.resampler_heads,
        resampler_heads=cfg.resampler_heads,
        image_decoder_depth=len({k.split(".")[1] for k in state if re.match(r"image_decoder\.\d+\.", k)}),
        vision_encoder_name=cfg.vision_encoder_name,
        text_encoder_name=cfg.text_encoder_name,
        gripper_state_mode="width" if cfg.gripper_width else "one_hot",
        gripper_state_dim=2 if cfg.gripper_width else 1,
        normalization_mapping={
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.IDENTITY,
            "ACTION": NormalizationMode.IDENTITY,
        },
        temporal_ensemble=cfg.temporal_ensemble,
        pil_image_size=RELEASED_IMAGE_SIZE,  # the released CLIP preprocess: PIL bicubic on uint8 frames
        device="cpu",
        push_to_hub=False,
    )
    if len(cfg.camera_keys) != views:
        raise ValueError(
            f"camera_keys: the released Seer reads {views} views (primary, wrist), got {cfg.camera_keys}"
        )
    shape = tuple(cfg.image_shape)
    seer.input_features = {k: PolicyFeature(type=FeatureType.VISUAL, shape=shape) for k in cfg.camera_keys}
    seer.input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
    seer.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(arm_dim + 1,))}
    return seer


@dataclass
class ConvertSeerConfig:
    # The released checkpoint (a torch.save dict with "model_state_dict", or a bare state dict).
    checkpoint: str = ""
    output_dir: str = ""
    # Official MAE encoder weights (mae_pretrain_vit_base.pth, {"model": ...}); without it the encoder keeps
    # vision_encoder_name's weights.
    mae_checkpoint: str | None = None
    vision_encoder_name: str = "facebook/vit-mae-base"
    text_encoder_name: str = "openai/clip-vit-base-patch32"
    # LeRobot keys of the primary and wrist cameras (defaults: LeRobot's LIBERO env names).
    camera_keys: list[str] = field(
        default_factory=lambda: ["observation.images.image", "observation.images.image2"]
    )
    image_shape: list[int] = field(default_factory=lambda: [3, 256, 256])
    # The checkpoint was trained with the 2-D gripper width in the state (released --gripper_width, LIBERO).
    gripper_width: bool = False
    # Steps of history to keep (<= the checkpoint's; default: all of them).
    history_length: int | None = None
    num_heads: int | None = None
    resampler_heads: int = 8
    temporal_ensemble: bool = False
    # Convert weights that are non-finite or larger than 1e4 in magnitude (refused by default), with a warning.
    allow_bad_weights: bool = False
    overwrite: bool = False


def convert(cfg: ConvertSeerConfig) -> Path:
    """Write the LeRobot ``seer`` policy directory for ``cfg.checkpoint``; returns its path."""
    from lerobot_vla_plugins.atomic import atomic_directory
    from lerobot_vla_plugins.convert.checks import check_weights

    from .modeling_seer import SeerPolicy
    from .processor_seer import make_seer_pre_post_processors

    if not cfg.checkpoint or not cfg.output_dir:
        raise ValueError("pass --checkpoint=<released .pth> and --output_dir=<directory to write>")
    blob = torch.load(cfg.checkpoint, map_location="cpu", weights_only=True)
    released = blob.get("model_state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(released, dict) or not released:
        raise ValueError(f"{cfg.checkpoint}: no 'model_state_dict' in this file; is it a Seer checkpoint?")
    check_weights(
        {k.removeprefix("module."): v for k, v in released.items()},
        source=cfg.checkpoint,
        allow_bad=cfg.allow_bad_weights,
    )
    seer_config = infer_config(released, cfg)
    state = convert_state_dict(released, seer_config.history_length)
    if cfg.mae_checkpoint:
        mae = torch.load(cfg.mae_checkpoint, map_location="cpu", weights_only=True)
        mae = mae.get("model", mae)
        check_weights(mae, source=cfg.mae_checkpoint, allow_bad=cfg.allow_bad_weights, depth=1)
        state.update({"model.vision_encoder." + k: v for k, v in convert_mae_state_dict(mae).items()})
    policy = SeerPolicy(seer_config)
    expected = set(policy.state_dict())
    missing = sorted(
        k for k in expected - set(state) if not k.startswith(("model.vision_encoder.", "model.text_encoder."))
    )
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"conversion does not match the model: missing {missing[:8]}, unexpected {unexpected[:8]}"
        )
    for key, value in state.items():
        target = policy.state_dict()[key]
        if target.shape != value.shape:
            raise ValueError(
                f"{key}: checkpoint shape {tuple(value.shape)} != model shape {tuple(target.shape)}"
            )
    policy.load_state_dict(state, strict=False)
    pre, post = make_seer_pre_post_processors(seer_config)
    with atomic_directory(cfg.output_dir, overwrite=cfg.overwrite, what="policy") as tmp:
        policy.save_pretrained(tmp)
        pre.save_pretrained(tmp)
        post.save_pretrained(tmp)
    logging.info(
        "wrote %s (%s Seer, %d steps of history)",
        cfg.output_dir,
        seer_config.size,
        seer_config.history_length,
    )
    if not cfg.mae_checkpoint and not any(k.startswith("model.vision_encoder.") for k in state):
        logging.warning(
            "the image encoder keeps %s's weights; pass --mae_checkpoint=mae_pretrain_vit_base.pth for the released MAE",
            cfg.vision_encoder_name,
        )
    return Path(cfg.output_dir)


def main(argv: list[str] | None = None) -> int:
    from lerobot_vla_plugins.convert.cli import run_converter

    return run_converter("lerobot-seer-convert", ConvertSeerConfig, convert, argv)


if __name__ == "__main__":
    sys.exit(main())
