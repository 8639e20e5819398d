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

With ``--vla_checkpoint`` it converts a released, *trained* VITA-VLA instead (``{epoch}.pth`` / ``{step}.pth`` of
the official ``train_ds.py``: ``torch.save({"epoch", "model_state_dict": get_checkpoint(model)})``, i.e. only the
parameters that trained, under DeepSpeed's ``module.`` prefix; ``transfer.py``'s small variant drops every ``vlm``
key) into a complete ``vita_vla`` policy directory: the VITA-1.5 backbone from ``--vita_path`` goes to
``<output_dir>/vlm`` (the policy's ``vlm_path``), the checkpoint's action modules and, when it holds them, its
fine-tuned language-model layers go into ``model.safetensors`` (``convert_vla_state_dict``), with the released
inference conventions in ``config.json`` (raw state and actions, 200 px PIL resize, the CALVIN action rule).

Usage::

    lerobot-vita-convert --vita_path=/models/VITA-1.5 --vision_tower_path=/models/InternViT-300M-448px \\
        --output_dir=/models/VITA-1.5-internvl
    lerobot-train --policy.type=vita_vla --policy.vlm_path=/models/VITA-1.5-internvl ...

    lerobot-vita-convert --vita_path=/models/VITA-1.5 --vision_tower_path=/models/InternViT-300M-448px \\
        --vla_checkpoint=/models/VITA-VLA/calvin/4.pth --output_dir=outputs/vita_vla_calvin
    lerobot-eval --policy.path=outputs/vita_vla_calvin ...
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import InternVLConfig

    from .configuration_vita_vla import VitaVlaConfig

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


def internvl_config(vita: dict, vision: dict, image_token_id: int) -> InternVLConfig:
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


#: A released VITA-VLA checkpoint's action modules (``VITAVLA``: ``model`` = ``VITAVLAModel``, ``seer`` = the teacher
#: whose decoder the student reuses) -> ``VitaVlaPolicy`` names; applied to the names without ``module.``.
VLA_RENAMES: tuple[tuple[str, str], ...] = (
    ("model.arm_state_encoder.", "model.state_encoder.arm."),
    ("model.gripper_state_encoder.", "model.state_encoder.gripper."),
    ("model.state_projector.", "model.state_encoder.projector."),
    (
        "model.action_mapper.",
        "model.action_mapper.",
    ),  # mlp3x_gelu: Linear (0), GELU, Linear (2), GELU, Linear (4)
    ("seer.action_decoder.", "model.action_head.decoder."),
    ("seer.arm_action_decoder.0.", "model.action_head.arm."),
    ("seer.gripper_action_decoder.0.", "model.action_head.gripper."),
)
VLA_VLM_PREFIX = "model.vlm."  # VITAVLAModel.vlm = the VITAQwen2ForCausalLM of VITA-1.5
BACKBONE_PREFIX = "model.backbone."  # VitaVlaModel.backbone; its .model = InternVLModel (no lm_head)


def convert_vla_state_dict(released: dict[str, Tensor]) -> dict[str, Tensor]:
    """A released VITA-VLA ``model_state_dict`` (``module.`` prefix optional) -> ``VitaVlaPolicy`` state-dict entries.

    ``model.action_pred_token`` (1, D) -> ``model.action_token`` (D,); the state encoders, the action mapper and
    Seer's decoder (``seer.action_decoder`` + ``arm_action_decoder[0]`` / ``gripper_action_decoder[0]``, the
    Sigmoid/Tanh are applied by our head) by ``VLA_RENAMES``; ``model.vlm.*`` (the language model, when it trained)
    through ``convert_key`` into the backbone; ``model.vlm.lm_head``, the audio encoder and the rest of ``seer``
    (the stage-1 teacher, unused at inference: present only in a save of every parameter) are dropped.

    Raises:
        ValueError: naming the tensors that are not part of a released VITAVLA.
    """
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in released.items():
        name = key.removeprefix("module.")
        if name == "model.action_pred_token":
            out["model.action_token"] = value.reshape(-1)
            continue
        if name.startswith(VLA_VLM_PREFIX):
            vita_key = name[len(VLA_VLM_PREFIX) :]
            if vita_key == "lm_head.weight":
                continue
            try:
                native = convert_key(vita_key, value)
            except ValueError:
                unknown.append(key)
                continue
            out.update({BACKBONE_PREFIX + k: v for k, v in native.items()})
            continue
        target = next((new + name[len(old) :] for old, new in VLA_RENAMES if name.startswith(old)), None)
        if target is not None:
            out[target] = value
        elif not name.startswith("seer."):
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"not a released VITA-VLA checkpoint: unknown tensors {unknown[:8]}{' ...' if len(unknown) > 8 else ''} "
            "(expected module.model.{action_pred_token, arm_state_encoder, gripper_state_encoder, state_projector, "
            "action_mapper, vlm.*} and module.seer.{action_decoder, arm_action_decoder, gripper_action_decoder})"
        )
    return out


def load_vla_checkpoint(path: str) -> dict[str, Tensor]:
    """The ``model_state_dict`` of a released VITA-VLA ``.pth`` (or a bare state dict), read with weights_only."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state = blob.get("model_state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"--vla_checkpoint={path}: no 'model_state_dict' of tensors in this file; pass a VITA-VLA training "
            "checkpoint ({epoch}.pth written by train_ds.py)"
        )
    return state


@dataclass
class ConvertVitaConfig:
    # Local directory of the released VITA-1.5 (config.json, safetensors shards, tokenizer files).
    vita_path: str = ""
    output_dir: str = ""
    # Local OpenGVLab/InternViT-300M-448px: its config.json (else the published values are used) and, when the VITA
    # checkpoint does not carry the vision tower, its weights.
    vision_tower_path: str | None = None
    # Cast the weights (e.g. bfloat16); None keeps the stored dtype. With --vla_checkpoint also the policy's
    # vlm_dtype (None: bfloat16, as trained).
    dtype: str | None = None
    # Convert weights that are non-finite or larger than 1e4 in magnitude (refused by default), with a warning.
    allow_bad_weights: bool = False
    overwrite: bool = False
    # A released, trained VITA-VLA checkpoint (.pth with "model_state_dict"): write a complete vita_vla policy
    # (backbone in <output_dir>/vlm) instead of the backbone alone. The options below apply to it.
    vla_checkpoint: str | None = None
    # LeRobot keys of the primary (static) and wrist (gripper) cameras, in the released order.
    camera_keys: list[str] = field(
        default_factory=lambda: ["observation.images.rgb_static", "observation.images.rgb_gripper"]
    )
    image_shape: list[int] = field(default_factory=lambda: [3, 200, 200])
    # Released --gripper_width (LIBERO): the state ends in the 2-D gripper width (8-D) instead of the 1-D command.
    gripper_width: bool = False
    # Released --sequence_length (CALVIN 10, LIBERO 7) and --action_pred_steps; not stored in the weights.
    history_length: int = 10
    action_pred_steps: int = 3
    # The released LIBERO rule (eval_utils_libero_vita.py): no history padding, temporal ensembling. Defaults: the
    # released CALVIN rule (pad with the last frame, execute the second predicted action).
    pad_history: bool = True
    temporal_ensemble: bool = False


def convert(cfg: ConvertVitaConfig) -> Path:
    """Write the native InternVL checkpoint (or, with ``vla_checkpoint``, the ``vita_vla`` policy); returns
    ``output_dir``."""
    from lerobot_vla_plugins.atomic import atomic_directory

    if not cfg.vita_path or not cfg.output_dir:
        raise ValueError("pass --vita_path=<VITA-1.5 directory> and --output_dir=<directory to write>")
    if cfg.vla_checkpoint:
        return convert_vla(cfg)
    with atomic_directory(cfg.output_dir, overwrite=cfg.overwrite, what="converted checkpoint") as tmp:
        write_backbone(cfg, tmp)
    return Path(cfg.output_dir)


def vla_policy_config(
    cfg: ConvertVitaConfig, state: dict[str, Tensor], vlm_path: Path, stage: str
) -> VitaVlaConfig:
    """The ``VitaVlaConfig`` of a converted released checkpoint: sizes from its tensors (policy names), the
    released inference conventions (raw state/actions, 200 px PIL resize, CALVIN or LIBERO rule)."""
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature

    from .configuration_vita_vla import VitaVlaConfig

    required = (
        "model.action_mapper.4.weight",
        "model.state_encoder.arm.weight",
        "model.action_head.arm.weight",
    )
    absent = [k for k in required if k not in state]
    if absent:
        raise ValueError(
            f"--vla_checkpoint={cfg.vla_checkpoint}: no {absent} after conversion; a stage-1 (--phase pretrain) "
            "checkpoint has no trained action decoder (seer.*), and vita_vla implements the released mlp3x_gelu "
            "action mapper (action_mapper.{0,2,4})"
        )
    if len(cfg.camera_keys) != 2:
        raise ValueError(
            f"camera_keys: the released VITA-VLA reads 2 views (primary, wrist), got {cfg.camera_keys}"
        )
    arm_state = state["model.state_encoder.arm.weight"].shape[1]
    gripper_dim = 2 if cfg.gripper_width else 1
    identity = dict.fromkeys(("VISUAL", "STATE", "ACTION"), NormalizationMode.IDENTITY)
    config = VitaVlaConfig(
        stage=stage,
        vlm_path=str(vlm_path),
        vlm_dtype=cfg.dtype or "bfloat16",
        vlm_image_size=200,  # preprocess_image_vita: 200 px -> 49 tokens per image
        pil_image_size=200,  # the released CLIPImageProcessor: PIL bicubic on uint8 frames
        history_length=cfg.history_length,
        action_pred_steps=cfg.action_pred_steps,
        teacher_hidden_size=state["model.action_mapper.4.weight"].shape[0],
        gripper_state_mode="width" if cfg.gripper_width else "one_hot",
        gripper_state_dim=gripper_dim,
        pad_history=cfg.pad_history,
        temporal_ensemble=cfg.temporal_ensemble,
        normalization_mapping=identity,  # the released code feeds raw states and predicts raw actions
        device="cpu",
        push_to_hub=False,
    )
    shape = tuple(cfg.image_shape)
    config.input_features = {k: PolicyFeature(type=FeatureType.VISUAL, shape=shape) for k in cfg.camera_keys}
    config.input_features["observation.state"] = PolicyFeature(
        type=FeatureType.STATE, shape=(arm_state + gripper_dim,)
    )
    arm = state["model.action_head.arm.weight"].shape[0]
    config.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(arm + 1,))}
    return config


def convert_vla(cfg: ConvertVitaConfig) -> Path:
    """``--vla_checkpoint``: the released VITA-VLA -> a ``vita_vla`` policy directory (config.json,
    model.safetensors, processors, the converted VITA-1.5 backbone in ``vlm/``)."""
    from lerobot_vla_plugins.atomic import atomic_directory
    from lerobot_vla_plugins.convert.checks import check_weights

    from .modeling_vita_vla import VitaVlaPolicy
    from .processor_vita_vla import make_vita_vla_pre_post_processors

    released = load_vla_checkpoint(cfg.vla_checkpoint)
    check_weights(
        {k.removeprefix("module."): v for k, v in released.items()},
        source=cfg.vla_checkpoint,
        allow_bad=cfg.allow_bad_weights,
        depth=3,
    )
    state = convert_vla_state_dict(released)
    tuned_llm = any(k.startswith(BACKBONE_PREFIX) for k in state)
    final_vlm = Path(cfg.output_dir).expanduser().resolve() / "vlm"
    with atomic_directory(cfg.output_dir, overwrite=cfg.overwrite, what="policy") as tmp:
        tmp.mkdir(parents=True)
        write_backbone(cfg, tmp / "vlm")
        # the LLM trained unless --freeze_vlm (train_ds.py): that is what the stages say
        config = vla_policy_config(cfg, state, tmp / "vlm", "finetune" if tuned_llm else "freeze_vlm")
        config.pretrained_path = cfg.vla_checkpoint  # a trained model: the stage checks need no teacher
        policy = VitaVlaPolicy(config)
        model_state = policy.state_dict()
        missing = sorted(k for k in model_state if k not in state and not k.startswith(BACKBONE_PREFIX))
        unexpected = sorted(k for k in state if k not in model_state)
        if missing or unexpected:
            raise ValueError(
                f"--vla_checkpoint={cfg.vla_checkpoint} does not fill the vita_vla model: missing {missing[:8]}, "
                f"unexpected {unexpected[:8]}"
            )
        wrong = [
            f"{k}: checkpoint {tuple(v.shape)} != model {tuple(model_state[k].shape)}"
            for k, v in state.items()
            if v.shape != model_state[k].shape
        ]
        if wrong:
            raise ValueError(f"--vla_checkpoint={cfg.vla_checkpoint}: shapes differ: {wrong[:8]}")
        policy.load_state_dict(state, strict=False)
        config.pretrained_path = None
        config.vlm_path = str(final_vlm)
        policy.save_pretrained(tmp)
        for pipeline in make_vita_vla_pre_post_processors(config):
            pipeline.save_pretrained(tmp)
    logging.info(
        "wrote %s: %d released tensors (%s), backbone %s",
        cfg.output_dir,
        len(released),
        "fine-tuned language model" if tuned_llm else "action modules only: VITA-1.5's language model",
        final_vlm,
    )
    return Path(cfg.output_dir)


def write_backbone(cfg: ConvertVitaConfig, tmp: Path) -> None:
    """The native InternVL checkpoint of ``cfg.vita_path`` into the (new) directory ``tmp``."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, InternVLForConditionalGeneration

    from lerobot_vla_plugins.convert.checks import check_weights

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
    logging.info("wrote the backbone: %d tensors, tokens %s", len(written), ids)


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
