"""Official Evo-1 checkpoints -> LeRobot ``evo1`` checkpoint directories (``lerobot-vla-evo1-convert``).

The official training script (MINT-SJTU/Evo-1, ``Evo_1/scripts/train.py``) saves DeepSpeed step directories::

    step_N/ mp_rank_00_model_states.pt   {"module": EVO1 state dict, ...DeepSpeed bookkeeping}
            config.json                  EvoConfig as a dict (horizon, per_action_dim, state_dim, dropout, ...)
            norm_stats.json              {arm_key: {dataset_key: {"observation.state": {...}, "action": {...}}}}
                                         (old ``main`` checkpoints: {robot_key: {"observation.state", "action"}})

LeRobot's ``evo1`` loads a directory with ``config.json`` (its ``Evo1Config``), ``model.safetensors`` (keys
``model.embedder.model.{vision_tower, multi_modal_projector, language_model}.*`` and ``model.action_head.*``)
and the processor pipelines. This module renames the weights (remote-code InternVL -> native, see
``convert/internvl.py``; the head keeps its sub-names), carries the model fields over, turns the statistics of
one (arm, dataset) into the normaliser state (padded to 24 dims by LeRobot's own ``make_evo1_pre_post_processors``:
min -1 / max +1 / mean 0 / std 1 on the padded dims, so zero-padded inputs stay 0), checks every tensor against
the policy LeRobot would build (on the meta device, no weights read) and writes the directory atomically.

Usage::

    lerobot-vla-evo1-convert --checkpoint_dir=Evo1_MetaWorld/step_65000 --output_dir=outputs/evo1_metaworld \\
        --features=metaworld
    lerobot-vla-evo1-convert --checkpoint_dir=Evo1_LIBERO --output_dir=outputs/evo1_libero \\
        --cameras=observation.images.image,observation.images.image2 \\
        --arm_key=franka_ee_pose_delta --dataset_key=libero_10_no_noops_lerobot --n_action_steps=14

Then ``lerobot-eval --policy.path=outputs/evo1_metaworld ...``.

What the official code does and LeRobot's ``evo1`` does not is carried by the converted checkpoint's preprocessor
(``processors/evo1.py``): the normalised state is clamped to [-1, 1] (bounds normalisations), and with
``--context=official`` (the default) every prompt is padded to 1024 tokens and the action head attends to all of
them without a mask, as the official embedder and head do. ``--context=lerobot`` keeps LeRobot's context (padding to
the longest prompt, padding and absent cameras masked out of the head).

Before anything is converted, every released tensor is checked (``convert.checks.check_weights``): a per-module
summary is printed and non-finite or exploding weights are refused (``--allow_bad_weights=true`` converts anyway).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lerobot_vla_plugins.convert.checks import check_weights
from lerobot_vla_plugins.convert.internvl import convert_remote_internvl_state_dict, count_language_layers
from lerobot_vla_plugins.errors import ConversionError

if TYPE_CHECKING:
    from lerobot.configs.types import PolicyFeature
    from lerobot.policies.evo1.configuration_evo1 import Evo1Config
    from lerobot.processor import PolicyProcessorPipeline

logger = logging.getLogger(__name__)

MODEL_STATES = "mp_rank_00_model_states.pt"
VLM_PREFIX = "embedder.model."
HEAD_PREFIX = "action_head."
#: Official remote-code backbone -> the native transformers checkpoint LeRobot's evo1 loads.
NATIVE_VLM = {"OpenGVLab/InternVL3-1B": "OpenGVLab/InternVL3-1B-hf"}
#: Official ``normalization_type`` (dataset config.yaml, saved into config.json by newer runs) -> LeRobot mode.
NORMALIZATION = {"bounds": "MIN_MAX", "bounds_q99": "QUANTILES", "normal": "MEAN_STD"}
STAT_NAMES = ("min", "max", "mean", "std", "q01", "q99", "q10", "q90")
#: The official server always runs 50 Euler steps, whatever config.json says (Evo1_server.py).
OFFICIAL_INFERENCE_STEPS = 50
#: The official embedder pads every prompt to this many tokens (``InternVL3Embedder.max_text_length``).
OFFICIAL_TEXT_LENGTH = 1024
#: ``--context``: the official embedder's context (1024 tokens, no key mask in the head) or LeRobot's own.
CONTEXTS = ("official", "lerobot")
#: Normalisation modes the official code clamps to [-1, 1] after normalising (bounds, bounds_q99).
CLAMPED_MODES = ("MIN_MAX", "QUANTILES")


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class OfficialCheckpoint:
    """The three files of an official step directory."""

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    norm_stats: dict[str, Any]


def load_official_checkpoint(step_dir: str | Path) -> OfficialCheckpoint:
    """Read ``mp_rank_00_model_states.pt`` (``torch.load(weights_only=True)``), ``config.json``, ``norm_stats.json``."""
    step_dir = Path(step_dir).expanduser()
    missing = [n for n in (MODEL_STATES, "config.json", "norm_stats.json") if not (step_dir / n).is_file()]
    if missing:
        raise ConversionError(
            f"--checkpoint_dir={step_dir}: missing {', '.join(missing)}; pass the official DeepSpeed step directory "
            f"(it holds {MODEL_STATES}, config.json and norm_stats.json)"
        )
    try:
        states = torch.load(step_dir / MODEL_STATES, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle with non-tensor classes: refuse rather than execute arbitrary code
        raise ConversionError(
            f"{step_dir / MODEL_STATES}: cannot be read with torch.load(weights_only=True) ({err}). Only plain "
            "tensor/state-dict checkpoints are converted."
        ) from err
    if not isinstance(states, dict) or "module" not in states:
        keys = list(states)[:8] if isinstance(states, dict) else type(states).__name__
        raise ConversionError(
            f"{step_dir / MODEL_STATES}: expected a DeepSpeed model-states dict with key 'module', got {keys}"
        )
    module = {k.removeprefix("module."): v for k, v in states["module"].items()}
    return OfficialCheckpoint(
        state_dict=module,
        config=json.loads((step_dir / "config.json").read_text()),
        norm_stats=json.loads((step_dir / "norm_stats.json").read_text()),
    )


def select_stats(
    norm_stats: dict, arm_key: str | None = None, dataset_key: str | None = None
) -> tuple[dict, str]:
    """The ``{"observation.state": ..., "action": ...}`` statistics of one embodiment, in either layout.

    New layout ``{arm_key: {dataset_key: stats}}``; old layout ``{robot_key: stats}``. A key may be omitted when
    there is only one choice.

    Returns:
        ``(stats, label)`` where label names the selection (``arm/dataset`` or ``robot``).
    """

    def is_stats(d) -> bool:
        return isinstance(d, dict) and ("observation.state" in d or "action" in d)

    def pick(options: dict, wanted: str | None, flag: str) -> str:
        if wanted is not None:
            if wanted not in options:
                raise ConversionError(
                    f"{flag}={wanted!r} is not in norm_stats.json; choose one of {sorted(options)}"
                )
            return wanted
        if len(options) != 1:
            raise ConversionError(
                f"norm_stats.json has several entries {sorted(options)}; pass {flag}=<one of them>"
            )
        return next(iter(options))

    if not norm_stats:
        raise ConversionError("norm_stats.json is empty")
    arm = pick(norm_stats, arm_key, "--arm_key")
    entry = norm_stats[arm]
    if is_stats(entry):  # old layout: {robot_key: {"observation.state", "action"}}
        if dataset_key is not None:
            logger.warning(
                "norm_stats.json uses the old single-level layout; --dataset_key=%s is ignored", dataset_key
            )
        stats, label = entry, arm
    else:
        ds = pick(entry, dataset_key, "--dataset_key")
        stats, label = entry[ds], f"{arm}/{ds}"
    for key in ("observation.state", "action"):
        if key not in stats:
            raise ConversionError(f"norm_stats.json[{label}] has no {key!r} statistics")
    return stats, label


def stats_to_lerobot(stats: dict) -> dict[str, dict[str, torch.Tensor]]:
    """Official per-feature lists -> LeRobot dataset stats (float32 tensors of the native width)."""
    out = {}
    for key in ("observation.state", "action"):
        feature = {}
        for name in STAT_NAMES:
            if name in stats[key]:
                feature[name] = torch.as_tensor(stats[key][name], dtype=torch.float32).reshape(-1)
        if not ({"min", "max"} <= feature.keys() or {"mean", "std"} <= feature.keys()):
            raise ConversionError(
                f"norm_stats {key}: needs min/max (or mean/std), found {sorted(stats[key])}"
            )
        widths = {v.numel() for v in feature.values()}
        if len(widths) != 1:
            raise ConversionError(f"norm_stats {key}: statistics of different widths {sorted(widths)}")
        out[key] = feature
    return out


# ---------------------------------------------------------------------------------------------- weights


def vlm_dtype_of(official: dict[str, torch.Tensor]) -> str:
    """The floating dtype the checkpoint stores the InternVL weights in (bf16 for DeepSpeed bf16 runs)."""
    dtypes = {v.dtype for k, v in official.items() if k.startswith(VLM_PREFIX) and v.is_floating_point()}
    if len(dtypes) != 1:
        return "float32"
    return str(dtypes.pop()).removeprefix("torch.")


def convert_state_dict(official: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Official EVO1 state dict -> LeRobot ``Evo1Policy`` state dict.

    Returns:
        ``(state_dict, vlm_num_layers)``, the number of language-model layers the checkpoint keeps (14 for the
        released models: the official embedder truncates InternVL3-1B's 24-layer Qwen2.5).
    """
    vlm = {k.removeprefix(VLM_PREFIX): v for k, v in official.items() if k.startswith(VLM_PREFIX)}
    head = {k.removeprefix(HEAD_PREFIX): v for k, v in official.items() if k.startswith(HEAD_PREFIX)}
    other = sorted(k for k in official if not k.startswith((VLM_PREFIX, HEAD_PREFIX)))
    if other:
        raise ConversionError(f"unexpected parameters outside embedder.model.* / action_head.*: {other[:10]}")
    if not vlm or not head:
        raise ConversionError(
            "the checkpoint must hold both embedder.model.* (InternVL) and action_head.* weights"
        )
    native, dropped = convert_remote_internvl_state_dict(vlm)
    if dropped:
        logger.info(
            "dropped %d InternVL text-head tensors (Evo-1 replaces lm_head with Identity)", len(dropped)
        )
    out = {f"model.embedder.model.{k}": v for k, v in native.items()}
    out.update({f"model.action_head.{k}": v for k, v in head.items()})
    return out, count_language_layers(vlm)


def head_sizes(official: dict[str, torch.Tensor]) -> dict[str, int]:
    """Head sizes read from the weights themselves (the config of a checkpoint could disagree with them)."""

    def shape(name):
        if name not in official:
            raise ConversionError(f"action head weight {name} is missing from the checkpoint")
        return tuple(official[name].shape)

    categories = 1
    if "action_head.state_encoder.fc1.linear.weight" in official:
        hidden_state, state_dim = shape("action_head.state_encoder.fc1.linear.weight")
        embed, per_action = shape("action_head.action_encoder.W1.linear.weight")
        hidden = shape("action_head.mlp_head.fc1.linear.weight")[0]
    else:  # num_categories > 1: CategorySpecificLinear.weight is (C, in, out)
        categories, state_dim, hidden_state = shape("action_head.state_encoder.fc1.weight")
        _, per_action, embed = shape("action_head.action_encoder.W1.weight")
        hidden = shape("action_head.mlp_head.fc1.weight")[2]
    blocks = {int(k.split(".")[2]) for k in official if k.startswith("action_head.transformer_blocks.")}
    pooled_in = shape("action_head.seq_pool_proj.weight")[1]
    return {
        "embed_dim": embed,
        "max_action_dim": per_action,
        "max_state_dim": state_dim,
        "state_hidden_dim": hidden_state,
        "hidden_dim": hidden,
        "num_layers": len(blocks),
        "chunk_size": pooled_in // embed,
        "num_categories": categories,
    }


# ---------------------------------------------------------------------------------------------- config


def build_config(
    ckpt: OfficialCheckpoint,
    input_features: dict,
    output_features: dict,
    vlm_num_layers: int,
    vlm_model_name: str | None = None,
    n_action_steps: int | None = None,
    num_inference_timesteps: int | None = None,
    normalization_type: str | None = None,
    vlm_dtype: str | None = None,
) -> Evo1Config:
    """The ``Evo1Config`` of the converted checkpoint (model fields from the weights and config.json).

    ``vlm_dtype`` defaults to the dtype the checkpoint stores the backbone in, so loading loses no precision.
    """
    from lerobot.configs.types import NormalizationMode
    from lerobot.policies.evo1.configuration_evo1 import Evo1Config

    cfg = ckpt.config
    sizes = head_sizes(ckpt.state_dict)
    horizon = cfg.get("action_horizon") or cfg.get("horizon")
    for field, official in (
        ("chunk_size", horizon),
        ("max_action_dim", cfg.get("per_action_dim")),
        ("max_state_dim", cfg.get("state_dim")),
        ("num_layers", cfg.get("num_layers")),
        ("embed_dim", cfg.get("embed_dim")),
    ):
        if official is not None and int(official) != sizes[field]:
            raise ConversionError(
                f"config.json says {field}={official} but the weights have {sizes[field]}; the checkpoint and its "
                "config.json do not belong together"
            )
    if vlm_model_name is None:
        official_vlm = cfg.get("vlm_name", "OpenGVLab/InternVL3-1B")
        if official_vlm not in NATIVE_VLM:
            raise ConversionError(
                f"config.json vlm_name={official_vlm!r} has no known native transformers checkpoint; pass "
                "--vlm_model_name=<native InternVL hub id or local directory>"
            )
        vlm_model_name = NATIVE_VLM[official_vlm]
    norm = (normalization_type or cfg.get("normalization_type") or "bounds").lower()
    if norm not in NORMALIZATION:
        raise ConversionError(f"--normalization_type={norm!r}: expected one of {sorted(NORMALIZATION)}")
    mode = NormalizationMode[NORMALIZATION[norm]]
    image_size = int(cfg.get("image_size", 448))
    chunk = sizes["chunk_size"]
    return Evo1Config(
        vlm_model_name=str(vlm_model_name),
        vlm_num_layers=vlm_num_layers,
        vlm_dtype=vlm_dtype or vlm_dtype_of(ckpt.state_dict),
        image_resolution=(image_size, image_size),
        chunk_size=chunk,
        n_action_steps=n_action_steps or chunk,
        max_state_dim=sizes["max_state_dim"],
        max_action_dim=sizes["max_action_dim"],
        embed_dim=sizes["embed_dim"],
        hidden_dim=sizes["hidden_dim"],
        state_hidden_dim=sizes["state_hidden_dim"],
        num_heads=int(cfg.get("num_heads", 8)),
        num_layers=sizes["num_layers"],
        num_categories=sizes["num_categories"],
        dropout=float(cfg.get("dropout", 0.0)),
        num_inference_timesteps=num_inference_timesteps or OFFICIAL_INFERENCE_STEPS,
        max_text_length=OFFICIAL_TEXT_LENGTH,
        return_cls_only=bool(cfg.get("return_cls_only", False)),
        normalization_mapping={"VISUAL": NormalizationMode.IDENTITY, "STATE": mode, "ACTION": mode},
        input_features=input_features,
        output_features=output_features,
    )


def features_for(
    spec: str | None, cameras: str | None, stats: dict, image_shape: tuple[int, int, int] = (3, 448, 448)
) -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """(input_features, output_features): ``metaworld``, a LeRobot dataset root, or camera keys + stats widths."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    from lerobot_vla_plugins.features import dataset_features, metaworld_policy_features

    state_dim, action_dim = (
        int(next(iter(stats[k].values())).numel()) for k in ("observation.state", "action")
    )
    if spec and cameras:
        raise ConversionError("pass either --features or --cameras, not both")
    if spec:
        inputs, outputs = metaworld_policy_features() if spec == "metaworld" else dataset_features(spec)
    elif cameras:
        keys = [c.strip() for c in cameras.split(",") if c.strip()]
        bad = [k for k in keys if not k.startswith("observation.image")]
        if bad:
            raise ConversionError(
                f"--cameras: {bad} are not LeRobot image keys (observation.image / observation.images.<name>)"
            )
        inputs = {k: PolicyFeature(type=FeatureType.VISUAL, shape=tuple(image_shape)) for k in keys}
        inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
        outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))}
    else:
        raise ConversionError(
            "say which observations the policy reads: --features=metaworld, --features=<LeRobot dataset root>, or "
            "--cameras=<key of image_1>,<key of image_2>,... (the official view order)"
        )
    got_state, got_action = inputs["observation.state"].shape[0], outputs["action"].shape[0]
    if (got_state, got_action) != (state_dim, action_dim):
        raise ConversionError(
            f"the features have state {got_state} / action {got_action} dims but norm_stats.json has "
            f"{state_dim} / {action_dim}: these statistics belong to another embodiment (check --arm_key/--dataset_key)"
        )
    return inputs, outputs


# ---------------------------------------------------------------------------------------------- writing


def expected_state_dict_shapes(config: Evo1Config) -> dict[str, tuple]:
    """Parameter and buffer shapes of the ``Evo1Policy`` LeRobot builds for ``config`` (meta device, no weights).

    Raises:
        ConversionError: the backbone cannot be built offline (neither a local directory nor a shipped preset).
    """
    import copy

    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy

    from lerobot_vla_tools.testing.weightless import weightless_pretrained

    cfg = copy.deepcopy(config)
    cfg.device = "meta"
    try:
        with weightless_pretrained("meta"), torch.device("meta"):
            policy = Evo1Policy(cfg)
    except OSError as err:
        raise ConversionError(
            f"cannot check the weights against {config.vlm_model_name!r}: {err}. Pass --vlm_model_name=<local "
            "InternVL directory or OpenGVLab/InternVL3-1B-hf>"
        ) from err
    return {k: tuple(v.shape) for k, v in policy.state_dict().items()}


def check_against_policy(state_dict: dict[str, torch.Tensor], config: Evo1Config) -> None:
    """Every tensor LeRobot's evo1 expects is present with its shape, and nothing else (a strict load)."""
    expected = expected_state_dict_shapes(config)
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if tuple(state_dict[k].shape) != expected[k])
    if missing or unexpected or wrong:
        lines = [f"missing {k}" for k in missing[:5]] + [f"unexpected {k}" for k in unexpected[:5]]
        lines += [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs policy {expected[k]}" for k in wrong[:5]]
        raise ConversionError(
            f"the converted weights do not fit LeRobot's evo1 built from {config.vlm_model_name!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong shapes):\n  "
            + "\n  ".join(lines)
        )


def official_conventions(
    preprocessor: PolicyProcessorPipeline, config: Evo1Config, context: str
) -> list[str]:
    """Insert the official Evo-1 conventions into ``preprocessor`` right after its normalizer, in place.

    Adds :class:`~lerobot_vla_plugins.processors.evo1.Evo1BoundsClampStep` for the bounds normalisations (the official
    server and loader clamp; not for mean/std) and, with ``context="official"``,
    :class:`~lerobot_vla_plugins.processors.evo1.Evo1OfficialContextStep`.

    Returns:
        What the converted checkpoint still does differently from the official code (for evo1_conversion.json).
    """
    from lerobot.processor import NormalizerProcessorStep

    from lerobot_vla_plugins.processors.evo1 import Evo1BoundsClampStep, Evo1OfficialContextStep

    added = []
    deviations = [
        "camera frames that are not image_resolution square are resized by LeRobot's evo1 (torchvision bicubic on "
        "uint8); the official server resizes with OpenCV bilinear, the official loader with PIL bicubic",
        "the hidden states at padded positions depend on the attention kernel (the released models were trained "
        "with FlashAttention-2, which both codes use when it is installed)",
    ]
    if config.normalization_mapping["STATE"].value in CLAMPED_MODES:
        added.append(Evo1BoundsClampStep())
    if context == "official":
        added.append(Evo1OfficialContextStep())
    else:
        deviations.append(
            "context: prompts padded to the longest of the batch and padding / absent cameras masked out of the "
            "action head (official: 1024 tokens, no key mask)"
        )
        if config.return_cls_only:
            deviations.append(
                "return_cls_only: the head sees the last valid token (official: position 0 of the padded prompt)"
            )
            logger.warning(
                "config.json has return_cls_only=true: LeRobot's evo1 pools the last valid token, the official "
                "embedder position 0 of the 1024-token prompt. With --context=lerobot the converted policy "
                "conditions on another token than the one it was trained on; --context=official keeps position 0."
            )
    steps = list(preprocessor.steps)
    at = next(i for i, step in enumerate(steps) if isinstance(step, NormalizerProcessorStep)) + 1
    preprocessor.steps = steps[:at] + added + steps[at:]
    return deviations


def convert(
    checkpoint_dir: str | Path,
    output_dir: str | Path,
    *,
    features: str | None = None,
    cameras: str | None = None,
    arm_key: str | None = None,
    dataset_key: str | None = None,
    vlm_model_name: str | None = None,
    n_action_steps: int | None = None,
    num_inference_timesteps: int | None = None,
    normalization_type: str | None = None,
    vlm_dtype: str | None = None,
    context: str = "official",
    allow_bad_weights: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert an official step directory into a LeRobot ``evo1`` checkpoint directory; returns its path.

    ``context="official"`` reproduces the official embedder's 1024-token context without a key mask in the head
    (``processors.evo1``); ``"lerobot"`` keeps LeRobot's. ``allow_bad_weights`` converts weights that fail
    ``convert.checks.check_weights`` (non-finite or above 1e4) with a warning instead of refusing them.
    """
    from lerobot.policies.evo1.processor_evo1 import make_evo1_pre_post_processors
    from safetensors.torch import save_file

    from lerobot_vla_plugins.atomic import atomic_directory

    if context not in CONTEXTS:
        raise ConversionError(f"--context={context!r}: expected one of {', '.join(CONTEXTS)}")
    ckpt = load_official_checkpoint(checkpoint_dir)
    check_weights(
        ckpt.state_dict,
        source=str(Path(checkpoint_dir).expanduser() / MODEL_STATES),
        allow_bad=allow_bad_weights,
        depth=3,
    )
    raw_stats, label = select_stats(ckpt.norm_stats, arm_key, dataset_key)
    stats = stats_to_lerobot(raw_stats)
    inputs, outputs = features_for(features, cameras, stats)
    state_dict, vlm_layers = convert_state_dict(ckpt.state_dict)
    config = build_config(
        ckpt,
        inputs,
        outputs,
        vlm_layers,
        vlm_model_name=vlm_model_name,
        n_action_steps=n_action_steps,
        num_inference_timesteps=num_inference_timesteps,
        normalization_type=normalization_type,
        vlm_dtype=vlm_dtype,
    )
    check_against_policy(state_dict, config)
    preprocessor, postprocessor = make_evo1_pre_post_processors(config, dataset_stats=stats)
    deviations = official_conventions(preprocessor, config, context)
    with atomic_directory(output_dir, overwrite=overwrite, what="output directory") as tmp:
        tmp.mkdir(parents=True)
        config._save_pretrained(tmp)
        save_file(
            {k: v.contiguous() for k, v in state_dict.items()},
            str(tmp / "model.safetensors"),
            metadata={"format": "pt"},
        )
        preprocessor.save_pretrained(tmp)
        postprocessor.save_pretrained(tmp)
        provenance = {
            "converted_from": str(Path(checkpoint_dir).expanduser().absolute()),
            "norm_stats": label,
            "normalization": config.normalization_mapping["ACTION"].value,
            "vlm_num_layers": vlm_layers,
            "context": context,
            "deviations_from_official": deviations,
            "official_config": ckpt.config,
        }
        (tmp / "evo1_conversion.json").write_text(json.dumps(provenance, indent=2, default=str))
    return Path(output_dir)


# ---------------------------------------------------------------------------------------------- command


@dataclass
class ConvertConfig:
    # Official DeepSpeed step directory (mp_rank_00_model_states.pt, config.json, norm_stats.json).
    checkpoint_dir: str = ""
    # Where the LeRobot checkpoint directory is written (atomically).
    output_dir: str = ""
    # Observation/action features: "metaworld" or a LeRobot dataset root; or use --cameras.
    features: str | None = None
    # Comma-separated LeRobot image keys in the official view order (image_1, image_2, image_3).
    cameras: str | None = None
    # Which statistics of norm_stats.json (needed when it holds several).
    arm_key: str | None = None
    dataset_key: str | None = None
    # Native InternVL to build the backbone from (default: the -hf twin of config.json's vlm_name).
    vlm_model_name: str | None = None
    # Actions executed per query (default: the whole chunk); Euler steps (default 50, as the official server).
    n_action_steps: int | None = None
    num_inference_timesteps: int | None = None
    # bounds | bounds_q99 | normal (default: config.json's normalization_type, else bounds).
    normalization_type: str | None = None
    # dtype the backbone is loaded in (default: the dtype the checkpoint stores it in, bfloat16 for DeepSpeed bf16).
    vlm_dtype: str | None = None
    # official: the official embedder's context (prompts padded to 1024 tokens, no key mask in the action head);
    # lerobot: LeRobot's (padding to the longest prompt, padding and absent cameras masked out of the head).
    context: str = "official"
    # Convert weights that are non-finite or larger than 1e4 in magnitude (refused by default), with a warning.
    allow_bad_weights: bool = False
    overwrite: bool = False


def main(argv: list[str] | None = None) -> int:
    import draccus

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = draccus.parse(ConvertConfig, args=sys.argv[1:] if argv is None else argv)
    if not cfg.checkpoint_dir or not cfg.output_dir:
        print(
            "lerobot-vla-evo1-convert: error: pass --checkpoint_dir=<official step dir> --output_dir=<new dir>",
            file=sys.stderr,
        )
        return 2
    try:
        out = convert(
            cfg.checkpoint_dir,
            cfg.output_dir,
            features=cfg.features,
            cameras=cfg.cameras,
            arm_key=cfg.arm_key,
            dataset_key=cfg.dataset_key,
            vlm_model_name=cfg.vlm_model_name,
            n_action_steps=cfg.n_action_steps,
            num_inference_timesteps=cfg.num_inference_timesteps,
            normalization_type=cfg.normalization_type,
            vlm_dtype=cfg.vlm_dtype,
            context=cfg.context,
            allow_bad_weights=cfg.allow_bad_weights,
            overwrite=cfg.overwrite,
        )
    except (ConversionError, FileExistsError) as err:
        print(f"lerobot-vla-evo1-convert: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}: load it with --policy.path={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
