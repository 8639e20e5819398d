"""``lerobot-a1-convert``: bring released weights into this project's layouts.

* ``--source=molmo``: ``allenai/Molmo-7B-D-0924`` (downloaded locally) -> a ``MolmoBackbone`` directory, to start A1
  training from Molmo as the paper does (``--policy.vlm_name=<that directory>``).
* ``--source=a1``: a released A1 checkpoint directory (``model.pt``, ``config.yaml``, ``dataset_statistics.json``,
  e.g. from ``spatialtemporal-ai/a1-libero``) -> a LeRobot A1 policy checkpoint (``config.json`` +
  ``model.safetensors`` + pre/post-processors) with the converted Molmo backbone in ``<output>/backbone``.

What a converted A1 checkpoint carries so that it acts as the released inference code does
(``robot_experiments/libero/eval_libero_*.py``; measured in docs/parity.md):

* the expert numbers its suffix after the prompt padded to ``data.sequence_length`` of config.yaml
  (``expert_position_offset``);
* the checkpoint's own ``dataset_statistics.json`` (copied next to the weights): q01/q99 bounds for the state
  (clipped to [-1, 1]) and the actions, the gripper dims that the released ``mask`` leaves unnormalised stored as
  q01 = -1, q99 = 1 (identity); for LIBERO the gripper output mapped to LeRobot LIBERO's -1 = open / +1 = close;
* early exit as the released eval: discrepancy over the whole padded action vector, exit 1 warm-started from the
  previous query's chunk.

Cameras, state and action sizes come from ``--features``: ``libero`` (LeRobot's LIBERO dataset/env layout:
``observation.images.image`` + ``image2``, 8-D state, 7-D action), ``metaworld``, or a LeRobot dataset root.
The released flow-matching head maps by name (``action_head.qwen2.model.*`` -> ``model.head.expert.*``, the other
``action_head.*`` modules keep their names); its unused ``lm_head`` (155.6M parameters) is dropped. Every tensor
is checked first (``lerobot_vla_plugins.convert.checks``): non-finite or exploding weights are refused unless
``--allow_bad_weights=true``.

Usage::

    lerobot-a1-convert --source=molmo --input=/models/Molmo-7B-D-0924 --output=/models/molmo-7b-d-native
    lerobot-a1-convert --source=a1 --input=/models/a1-libero --output=/models/a1-libero-lerobot --features=libero \\
        --unnorm_key=libero_spatial_no_noops
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lerobot_vla_plugins.errors import ConversionError

if TYPE_CHECKING:
    from lerobot.configs.types import PolicyFeature

logger = logging.getLogger(__name__)

#: prefixes FSDP / DDP wrappers leave in released state dicts
_WRAPPER_PATTERNS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "module.")
STATS_FILE = "dataset_statistics.json"
#: LeRobot's LIBERO layout (HuggingFaceVLA/libero dataset, lerobot-eval --env.type=libero with its
#: LiberoProcessorStep): agent view + wrist view, state [eef pos (3), axis-angle (3), gripper qpos (2)], 7-D action
LIBERO_IMAGE_SHAPE = (3, 256, 256)


def _clean_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for pat in _WRAPPER_PATTERNS:
            k = k.replace(pat, "")
        out[k] = v
    return out


def _read_config_yaml(input_dir: Path) -> tuple[dict, dict]:
    """(model section, data section) of the released ``config.yaml`` (or ``model.yaml``)."""
    import yaml

    for name in ("config.yaml", "model.yaml"):
        p = input_dir / name
        if p.is_file():
            data = yaml.safe_load(p.read_text()) or {}
            return data.get("model", data), data.get("data") or {}
    return {}, {}


def libero_features() -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """(inputs, outputs) of LeRobot's LIBERO layout, the order of the released A1's views (primary, wrist)."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {
        "observation.images.image": PolicyFeature(type=FeatureType.VISUAL, shape=LIBERO_IMAGE_SHAPE),
        "observation.images.image2": PolicyFeature(type=FeatureType.VISUAL, shape=LIBERO_IMAGE_SHAPE),
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(8,)),
    }
    return inputs, {"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))}


def _features(features: str):
    from lerobot_vla_plugins.features import dataset_features, metaworld_policy_features

    if features == "libero":
        return libero_features()
    if features == "metaworld":
        return metaworld_policy_features()
    try:
        return dataset_features(features)
    except ValueError as err:
        raise ConversionError(f"a1 convert: --features: {err} (or 'libero')") from None


def read_released_stats(input_dir: Path, unnorm_key: str | None) -> tuple[str, dict]:
    """The ``dataset_statistics.json`` entry the released eval would use (its ``unnorm_key`` rule: the only
    entry, or the given key, or ``<key>_no_noops``)."""
    path = input_dir / STATS_FILE
    if not path.is_file():
        raise ConversionError(
            f"a1 convert: {path} is missing; released A1 checkpoints ship their normalisation statistics in "
            f"{STATS_FILE} next to model.pt - download it with the checkpoint"
        )
    stats = json.loads(path.read_text())
    keys = [k for k, v in stats.items() if isinstance(v, dict) and "action" in v]
    if unnorm_key is None:
        if len(keys) != 1:
            raise ConversionError(f"a1 convert: {path} has statistics for {keys}; pick one with --unnorm_key")
        unnorm_key = keys[0]
    elif unnorm_key not in keys and f"{unnorm_key}_no_noops" in keys:
        unnorm_key = f"{unnorm_key}_no_noops"
    if unnorm_key not in keys:
        raise ConversionError(f"a1 convert: --unnorm_key={unnorm_key!r} is not in {path} (it has {keys})")
    return unnorm_key, stats[unnorm_key]


def lerobot_stats(entry: dict, state_dim: int | None, action_dim: int) -> dict[str, dict[str, torch.Tensor]]:
    """LeRobot normaliser statistics equal to the released BOUNDS_Q99 maps.

    The released actions are ``where(mask, 2 (a - q01) / (q99 - q01 + 1e-8) - 1, a)``; a dim its ``mask`` leaves
    out (the gripper) gets q01 = -1, q99 = 1, for which LeRobot's QUANTILES map is the identity. The released
    1e-8 in the denominator is dropped (a relative change below 1e-7 for the LIBERO ranges).
    """

    def arrays(part: dict, name: str, dim: int) -> dict[str, torch.Tensor]:
        out = {}
        for key in ("q01", "q99", "min", "max", "mean", "std"):
            if key not in part:
                if key in ("q01", "q99"):
                    raise ConversionError(f"a1 convert: the {name} statistics have no {key!r}")
                continue
            t = torch.tensor(part[key], dtype=torch.float32).reshape(-1)
            if t.numel() != dim:
                raise ConversionError(
                    f"a1 convert: the released {name} statistics have {t.numel()} dims but the features say {dim}; "
                    "pass the --features the checkpoint was trained for (LIBERO: --features=libero)"
                )
            out[key] = t
        return out

    action = arrays(entry["action"], "action", action_dim)
    mask = torch.tensor(entry["action"].get("mask", [True] * action_dim), dtype=torch.bool).reshape(-1)
    if mask.numel() != action_dim:
        raise ConversionError(f"a1 convert: the action mask has {mask.numel()} dims, the action {action_dim}")
    action["q01"] = torch.where(mask, action["q01"], torch.tensor(-1.0))
    action["q99"] = torch.where(mask, action["q99"], torch.tensor(1.0))
    out = {"action": action}
    if state_dim is not None:
        if "proprio" not in entry:
            raise ConversionError("a1 convert: the statistics have no 'proprio' entry for observation.state")
        out["observation.state"] = arrays(entry["proprio"], "proprio (observation.state)", state_dim)
    return out


def convert_a1_checkpoint(
    input_dir: str | Path,
    output: str | Path,
    features: str = "libero",
    unnorm_key: str | None = None,
    libero_gripper: bool | None = None,
    tokenizer: str | None = None,
    num_heads: int | None = None,
    vision_heads: int | None = None,
    chunk_size: int | None = None,
    n_action_steps: int | None = None,
    sequence_length: int | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    allow_bad_weights: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Convert a released A1 flow-matching checkpoint; returns the policy directory (``output``).

    Args:
        features: ``libero``, ``metaworld`` or a LeRobot dataset root (cameras, state and action sizes).
        unnorm_key: the dataset entry of ``dataset_statistics.json`` (needed when it has several).
        libero_gripper: map the gripper to LeRobot LIBERO's convention (default: when the key names LIBERO).
        sequence_length: the released ``data.sequence_length`` (default: config.yaml's).
        allow_bad_weights: convert even non-finite / exploding weights (only warn).
        log: where the per-module weight summary goes (default: this module's logger).
    """
    from transformers import AutoTokenizer

    from lerobot_vla_plugins.atomic import atomic_directory
    from lerobot_vla_plugins.convert.checks import check_weights
    from lerobot_vla_plugins.convert.molmo import (
        convert_molmo_state_dict,
        load_state_dict,
        save_molmo_backbone,
    )

    from .configuration_a1 import A1Config
    from .modeling_a1 import A1Policy
    from .processor_a1 import make_a1_pre_post_processors

    input_dir = Path(input_dir).expanduser()
    output = Path(output).expanduser().absolute()
    model_cfg, data_cfg = _read_config_yaml(input_dir)
    sd = _clean_keys(load_state_dict(input_dir))
    if "action_head.qwen2.model.layers.0.self_attn.q_proj.weight" not in sd:
        if "action_head.model.fc1.weight" in sd:
            raise ConversionError(
                "a1 convert: this is an L1-regression (MLP head) A1 checkpoint; its query tokens are vocabulary tokens with "
                "bidirectional attention, which this port replaces by learned queries - only the released flow-matching "
                "checkpoints convert"
            )
        raise ConversionError(f"a1 convert: {input_dir} holds no A1 flow-matching head (action_head.qwen2.*)")
    check_weights(sd, source=str(input_dir), allow_bad=allow_bad_weights, log=log)
    num_heads = num_heads or model_cfg.get("n_heads")
    if not num_heads:
        raise ConversionError("a1 convert: config.yaml has no model.n_heads; pass --num_heads (Qwen2-7B: 28)")
    sequence_length = sequence_length or data_cfg.get("sequence_length")
    if not sequence_length:
        raise ConversionError(
            "a1 convert: config.yaml has no data.sequence_length (the length the released collator pads every "
            "prompt to, which numbers the expert's action tokens); pass --sequence_length (LIBERO: 600)"
        )
    inputs, outputs = _features(features)
    state = inputs.get("observation.state")
    action_dim = outputs["action"].shape[0]
    key, entry = read_released_stats(input_dir, unnorm_key)
    stats = lerobot_stats(entry, state.shape[0] if state is not None else None, action_dim)
    if libero_gripper is None:
        libero_gripper = "libero" in key.lower()

    vit_layers = tuple(model_cfg.get("vit_layers") or (-2, -9))
    try:
        parts = convert_molmo_state_dict(
            sd,
            num_heads=int(num_heads),
            vision_heads=vision_heads,
            vision_feature_layers=vit_layers,
            rope_theta=float(model_cfg.get("rope_theta", 1e6)),
            rms_norm_eps=float(model_cfg.get("layer_norm_eps", 1e-6)),
            max_position_embeddings=int(model_cfg.get("max_sequence_length", 4096)),
            prefix="",
        )
    except (KeyError, ValueError) as err:
        raise ConversionError(f"a1 convert: {err}") from None
    # the released preprocessor writes every view's features into the first view's slots (backbones/molmo.py)
    parts.molmo_config["view_slots"] = "released_a1"
    tok_id = tokenizer or (model_cfg.get("tokenizer") or {}).get("identifier") or "Qwen/Qwen2-7B"
    tok = AutoTokenizer.from_pretrained(tok_id)

    head_sd = {k[len("action_head.") :]: v for k, v in sd.items() if k.startswith("action_head.")}
    head_sd = {
        re.sub(r"^qwen2\.model\.", "expert.", k): v
        for k, v in head_sd.items()
        if not k.startswith("qwen2.lm_head.")
    }
    hidden = head_sd["state_proj.weight"].shape[0]
    depth = 1 + max(int(m.group(1)) for k in head_sd if (m := re.match(r"expert\.layers\.(\d+)\.", k)))
    heads = int(model_cfg.get("action_head_flow_matching_heads", 8))
    head_dim = hidden // heads
    kv_heads = head_sd["expert.layers.0.self_attn.k_proj.weight"].shape[0] // head_dim
    chunk = int(chunk_size or model_cfg.get("num_actions_chunk", 8))

    with atomic_directory(output, overwrite=overwrite, what="A1 checkpoint") as tmp:
        backbone_dir = save_molmo_backbone(
            parts, tok, tmp / "backbone", getattr(torch, dtype) if dtype else None
        )
        config = A1Config(
            backbone_family="molmo",
            vlm_name=str(backbone_dir),
            vlm_dtype=dtype or "float32",
            head="flow_matching",
            expert_hidden_size=hidden,
            expert_num_heads=heads,
            expert_num_kv_heads=kv_heads,
            expert_intermediate_size=head_sd["expert.layers.0.mlp.gate_proj.weight"].shape[0],
            expert_num_layers=depth,
            expert_position_offset=int(sequence_length),
            max_action_dim=head_sd["action_in_proj.weight"].shape[1],
            max_state_dim=head_sd["state_proj.weight"].shape[1],
            chunk_size=chunk,
            # released eval: num_open_loop_steps = 8 actions per query
            n_action_steps=int(n_action_steps or min(8, chunk)),
            num_inference_steps=int(model_cfg.get("num_diffusion_inference_steps") or 10),
            exit_warm_start_chain="released",
            exit_discrepancy_dims="padded",
            clip_normalized_state=True,
            libero_gripper=bool(libero_gripper),
            input_features=inputs,
            output_features=outputs,
            device="cpu",
            push_to_hub=False,
        )
        policy = A1Policy(config)
        missing, unexpected = policy.model.head.load_state_dict(head_sd, strict=False)
        if missing or unexpected:
            raise ConversionError(
                f"a1 convert: head weights do not match (missing {missing}, unexpected {unexpected})"
            )
        # the policy must point at the backbone's final location
        policy.config.vlm_name = str(output / "backbone")
        policy.save_pretrained(tmp)
        pre, post = make_a1_pre_post_processors(policy.config, dataset_stats=stats)
        pre.save_pretrained(tmp)
        post.save_pretrained(tmp)
        shutil.copyfile(input_dir / STATS_FILE, tmp / STATS_FILE)
    return output


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--source", choices=["molmo", "a1"])
    known, rest = source.parse_known_args(argv)
    if known.source == "molmo":  # the Molmo-7B-D converter's own command line
        from lerobot_vla_plugins.convert.molmo import main as molmo_main

        return molmo_main(rest, prog="lerobot-a1-convert --source=molmo")
    from lerobot_vla_plugins.convert.checks import add_allow_bad_weights_argument

    ap = argparse.ArgumentParser(prog="lerobot-a1-convert", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--source", required=True, choices=["molmo", "a1"], help="molmo: see --source=molmo --help"
    )
    ap.add_argument("--input", required=True, help="released checkpoint directory")
    ap.add_argument("--output", required=True, help="directory to write")
    ap.add_argument(
        "--features",
        default="libero",
        help="'libero' (default), 'metaworld' or a LeRobot dataset root (cameras and sizes)",
    )
    ap.add_argument(
        "--unnorm_key", default=None, help="the dataset_statistics.json entry (when it has several)"
    )
    ap.add_argument(
        "--libero_gripper",
        choices=["true", "false"],
        default=None,
        help="emit LeRobot LIBERO's gripper convention (default: when the statistics key names LIBERO)",
    )
    ap.add_argument("--tokenizer", default=None, help="tokenizer dir or id (default: config.yaml's)")
    ap.add_argument("--num_heads", type=int, default=None)
    ap.add_argument("--vision_heads", type=int, default=None)
    ap.add_argument("--chunk_size", type=int, default=None)
    ap.add_argument("--n_action_steps", type=int, default=None)
    ap.add_argument(
        "--sequence_length", type=int, default=None, help="default: config.yaml's data.sequence_length"
    )
    ap.add_argument("--dtype", default=None, choices=[None, "float32", "bfloat16", "float16"])
    ap.add_argument("--overwrite", action="store_true")
    add_allow_bad_weights_argument(ap)
    args = ap.parse_args(argv)
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    try:
        out = convert_a1_checkpoint(
            args.input,
            args.output,
            features=args.features,
            unnorm_key=args.unnorm_key,
            libero_gripper=None if args.libero_gripper is None else args.libero_gripper == "true",
            tokenizer=args.tokenizer,
            num_heads=args.num_heads,
            vision_heads=args.vision_heads,
            chunk_size=args.chunk_size,
            n_action_steps=args.n_action_steps,
            sequence_length=args.sequence_length,
            dtype=args.dtype,
            overwrite=args.overwrite,
            allow_bad_weights=args.allow_bad_weights,
            log=print,
        )
    except (ConversionError, FileNotFoundError, FileExistsError) as err:
        print(f"lerobot-a1-convert: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
