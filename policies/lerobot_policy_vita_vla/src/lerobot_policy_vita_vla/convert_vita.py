"""``lerobot-vita-convert``: the released VITA-1.5 weights (``VITA-MLLM/VITA-1.5``, ``VITAQwen2ForCausalLM`` +
InternViT-300M + ``mlp2x_gelu`` projector, loadable only with the VITA repository's code) -> transformers' native
InternVL layout (``InternVLForConditionalGeneration``), which ``vita_vla`` loads with plain ``from_pretrained``.

What changes and why it is exact:

* vision tower: InternViT's remote-code names -> ``InternVLVisionModel`` names (fused qkv split into q/k/v, as
  transformers' own InternVL converter does); the position embedding stays at 448 px and is interpolated at run
  time for 200 px inputs, as InternViT's ``_get_pos_embed`` does (bicubic, same call);
* projector: VITA's tower multiplies the features by 0.5 before the pixel shuffle and its projector is
  Linear-GELU-Linear with no LayerNorm: the 0.5 is folded into the first Linear (W' = 0.5 W, exact since nothing
  sits in between) and the config says ``projector_layer_norm: false`` (the backbone drops the norm; unit weights
  are written so the checkpoint loads without missing keys);
* language model: ``model.{embed_tokens,layers,norm}`` -> ``model.language_model.*``; ``lm_head`` unchanged;
* the audio encoder is dropped (VITA-VLA never uses it);
* tokenizer: Qwen2.5's, plus ``<IMG_CONTEXT>``, ``<state>``, ``<action>`` as added special tokens (ids after the
  last token; the embedding matrix already has spare rows). VITA-VLA splits its prompt at ``<image>``/``<state>``/
  ``<action>`` and tokenises the pieces separately, which is what added special tokens do.

Every released shard is checked first (``lerobot_vla_plugins.convert.checks.check_weights``): a per-module summary
is printed and non-finite or exploding tensors are refused (``--allow_bad_weights=true`` converts anyway).
Shards are converted one at a time (memory: one shard), written as a new sharded safetensors checkpoint with
its index, into a temporary directory renamed into place at the end.

Usage::

    lerobot-vita-convert --vita_path=/models/VITA-1.5 --vision_tower_path=/models/InternViT-300M-448px \\
        --output_dir=/models/VITA-1.5-internvl
    lerobot-train --policy.type=vita_vla --policy.vlm_path=/models/VITA-1.5-internvl ...
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

#: ``OpenGVLab/InternViT-300M-448px`` config.json (the tower VITA-1.5 names in ``mm_vision_tower``), used when
#: ``--vision_tower_path`` is not given.
INTERNVIT_300M_448PX = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "image_size": 448,
    "patch_size": 14,
    "qkv_bias": True,
    "qk_normalization": False,
    "norm_type": "layer_norm",
    "layer_norm_eps": 1e-6,
    "hidden_act": "gelu",
    "initializer_factor": 0.1,
}
VITA_TOKENS = ("<IMG_CONTEXT>", "<state>", "<action>")
PIXEL_SHUFFLE_SCALE = 0.5  # InternViTVisionTower.scale_pix_shuffle

VISION_PREFIX = "model.vision_tower.vision_tower."


def convert_vision_key(key: str, value: Tensor) -> dict[str, Tensor]:
    """One InternViT tensor (names without prefix, e.g. ``encoder.layers.0.attn.qkv.weight``) -> native
    ``model.vision_tower.*`` tensor(s), through the core remote-code -> native InternVL mapping
    (``lerobot_vla_plugins.convert.internvl``: HF-style names, fused qkv split into q/k/v)."""
    from lerobot_vla_plugins.convert.internvl import (
        UnsupportedInternVLKeyError,
        convert_remote_internvl_state_dict,
    )

    try:
        native, _ = convert_remote_internvl_state_dict({"vision_model." + key: value})
    except UnsupportedInternVLKeyError as err:
        raise ValueError(f"unknown InternViT tensor {key!r}") from err
    return {"model." + k: v for k, v in native.items()}


def convert_key(key: str, value: Tensor) -> dict[str, Tensor]:
    """One tensor of the released VITA-1.5 checkpoint -> native InternVL tensor(s) ({} when dropped)."""
    if key.startswith(VISION_PREFIX):
        return convert_vision_key(key[len(VISION_PREFIX) :], value)
    if key.startswith("model.audio_encoder."):
        return {}
    if key == "model.mm_projector.0.weight":
        return {"model.multi_modal_projector.linear_1.weight": value * PIXEL_SHUFFLE_SCALE}
    if key == "model.mm_projector.0.bias":
        return {"model.multi_modal_projector.linear_1.bias": value}
    if key.startswith("model.mm_projector.2."):
        return {"model.multi_modal_projector.linear_2." + key.rsplit(".", 1)[1]: value}
    for part in ("embed_tokens.", "layers.", "norm."):
        if key.startswith("model." + part):
            return {"model.language_model." + key[len("model.") :]: value}
    if key == "lm_head.weight":
        return {key: value}
    raise ValueError(f"not a VITA-1.5 checkpoint: unknown tensor {key!r}")


def internvl_config(vita: dict, vision: dict, image_token_id: int):
    """The native ``InternVLConfig`` for a VITA-1.5 ``config.json`` and an InternViT ``config.json``."""
    from transformers import InternVLConfig

    if vita.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ValueError(
            f"mm_projector_type={vita.get('mm_projector_type')!r}: only VITA-1.5's mlp2x_gelu converts to InternVL"
        )
    if vita.get("mm_hidden_size", vision["hidden_size"] * 4) != vision["hidden_size"] * 4:
        raise ValueError(
            f"mm_hidden_size {vita['mm_hidden_size']} != 4 x the vision width {vision['hidden_size']}: the vision tower "
            "config does not belong to this checkpoint (pass the right --vision_tower_path)"
        )
    text_keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "vocab_size",
        "max_position_embeddings",
        "rope_theta",
        "rms_norm_eps",
        "hidden_act",
        "tie_word_embeddings",
        "sliding_window",
        "use_sliding_window",
        "max_window_layers",
        "bos_token_id",
        "eos_token_id",
    )
    text = {"model_type": "qwen2", **{k: vita[k] for k in text_keys if k in vita}}
    size, patch = vision["image_size"], vision["patch_size"]
    vision_config = {
        "model_type": "internvl_vision",
        "hidden_size": vision["hidden_size"],
        "intermediate_size": vision["intermediate_size"],
        "num_attention_heads": vision["num_attention_heads"],
        "num_hidden_layers": vision["num_hidden_layers"],
        "image_size": [size, size],
        "patch_size": [patch, patch],
        "attention_bias": vision.get("qkv_bias", True),
        "use_qk_norm": vision.get("qk_normalization", False),
        "norm_type": vision.get("norm_type", "layer_norm"),
        "layer_norm_eps": vision.get("layer_norm_eps", 1e-6),
        "hidden_act": vision.get("hidden_act", "gelu"),
        "layer_scale_init_value": vision.get("initializer_factor", 0.1),
        "use_absolute_position_embeddings": True,
        "use_mean_pooling": True,
    }
    config = InternVLConfig(
        vision_config=vision_config,
        text_config=text,
        image_token_id=image_token_id,
        image_seq_length=(size // patch) ** 2 // 4,
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_layer_norm=False,
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    return config


def _shards(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        return [directory / f for f in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {directory}")
    return files


@dataclass
class ConvertVitaConfig:
    # Local directory of the released VITA-1.5 (config.json, safetensors shards, tokenizer files).
    vita_path: str = ""
    output_dir: str = ""
    # Local OpenGVLab/InternViT-300M-448px: its config.json (else the published values are used) and, when the VITA
    # checkpoint does not carry the vision tower, its weights.
    vision_tower_path: str | None = None
    # Cast the weights (e.g. bfloat16); None keeps the stored dtype.
    dtype: str | None = None
    # Convert weights that are non-finite or larger than 1e4 in magnitude (refused by default), with a warning.
    allow_bad_weights: bool = False
    overwrite: bool = False


def convert(cfg: ConvertVitaConfig) -> Path:
    """Write the native InternVL checkpoint; returns ``output_dir``."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, InternVLForConditionalGeneration

    from lerobot_vla_plugins.atomic import atomic_directory
    from lerobot_vla_plugins.convert.checks import check_weights

    if not cfg.vita_path or not cfg.output_dir:
        raise ValueError("pass --vita_path=<VITA-1.5 directory> and --output_dir=<directory to write>")
    src = Path(cfg.vita_path).expanduser()
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src} has no config.json; download VITA-MLLM/VITA-1.5 there first")
    vita = json.loads((src / "config.json").read_text())
    if "vita" not in str(vita.get("model_type", "")).lower():
        raise ValueError(f"{src}: model_type {vita.get('model_type')!r} is not VITA's ('vita-Qwen2')")
    vit_dir = Path(cfg.vision_tower_path).expanduser() if cfg.vision_tower_path else None
    vision = dict(INTERNVIT_300M_448PX)
    if vit_dir is not None:
        vision.update(json.loads((vit_dir / "config.json").read_text()))
    dtype = getattr(torch, cfg.dtype) if cfg.dtype else None

    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.add_tokens([t for t in VITA_TOKENS if t not in tokenizer.get_vocab()], special_tokens=True)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VITA_TOKENS}
    if max(ids.values()) >= vita["vocab_size"]:
        raise ValueError(f"the added tokens {ids} do not fit the {vita['vocab_size']}-row embedding")
    config = internvl_config(vita, vision, ids["<IMG_CONTEXT>"])
    with torch.device("meta"):
        expected = set(InternVLForConditionalGeneration(config).state_dict())

    written: dict[str, str] = {}
    with atomic_directory(cfg.output_dir, overwrite=cfg.overwrite, what="converted checkpoint") as tmp:
        tmp.mkdir(parents=True)
        shards = _shards(src)
        total = len(shards) + 1
        has_vision = False
        for i, shard in enumerate(shards, start=1):
            out: dict[str, Tensor] = {}
            with safe_open(str(shard), "pt") as f:
                released = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not iterable)
            check_weights(released, source=str(shard), allow_bad=cfg.allow_bad_weights, depth=3)
            for key, value in released.items():
                has_vision |= key.startswith(VISION_PREFIX)
                out.update(convert_key(key, value))
            del released
            name = f"model-{i:05d}-of-{total:05d}.safetensors"
            _save(out, tmp / name, dtype, save_file)
            written.update(dict.fromkeys(out, name))
        extra: dict[str, Tensor] = {}
        if not has_vision:
            if vit_dir is None:
                raise ValueError(
                    f"{src} does not contain the vision tower: pass --vision_tower_path=<InternViT-300M-448px>"
                )
            for shard in _shards(vit_dir):
                with safe_open(str(shard), "pt") as f:
                    released = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not iterable)
                check_weights(released, source=str(shard), allow_bad=cfg.allow_bad_weights, depth=3)
                for key, value in released.items():
                    extra.update(convert_vision_key(key.removeprefix("vision_model."), value))
        width = config.vision_config.hidden_size * 4  # the (unused) projector norm: unit weights, zero bias
        extra["model.multi_modal_projector.layer_norm.weight"] = torch.ones(width)
        extra["model.multi_modal_projector.layer_norm.bias"] = torch.zeros(width)
        name = f"model-{total:05d}-of-{total:05d}.safetensors"
        _save(extra, tmp / name, dtype, save_file)
        written.update(dict.fromkeys(extra, name))
        missing, unexpected = sorted(expected - set(written)), sorted(set(written) - expected)
        if config.text_config.tie_word_embeddings:
            missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise ValueError(
                f"conversion does not match InternVL: missing {missing[:8]}, unexpected {unexpected[:8]}"
            )
        (tmp / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": written}, indent=1)
        )
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    logging.info("wrote %s: %d tensors, tokens %s", cfg.output_dir, len(written), ids)
    return Path(cfg.output_dir)


def _save(tensors: dict[str, Tensor], path: Path, dtype, save_file) -> None:
    out = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
        for k, v in tensors.items()
    }
    save_file(out, str(path), metadata={"format": "pt"})


def main(argv: list[str] | None = None) -> int:
    from lerobot_vla_plugins.convert.cli import run_converter

    return run_converter("lerobot-vita-convert", ConvertVitaConfig, convert, argv)


if __name__ == "__main__":
    sys.exit(main())
