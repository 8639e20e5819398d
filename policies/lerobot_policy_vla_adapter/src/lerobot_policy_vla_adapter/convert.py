"""``lerobot-vla-adapter-convert``: released VLA-Adapter checkpoints -> LeRobot checkpoint directories.

Two layouts of the released artifacts:

``checkpoint``: a released fine-tuned VLA (e.g. ``VLA-Adapter/LIBERO-Spatial-Pro``)::

    config.json                           Prismatic/OpenVLA config (timm_model_ids, image_sizes, text_config)
    model.safetensors                     merged VLA: vision_backbone.{featurizer,fused_featurizer}.* (timm keys),
                                          projector.fc{1,2,3}.*, language_model.{model.*,lm_head.weight}, action_queries.weight
    action_head--<step>_checkpoint.pt     L1 head state dict (``model.*``; Pro adds film_gen.*), maybe "module."-prefixed
    proprio_projector--<step>_checkpoint.pt
    dataset_statistics.json               {unnorm_key: {"action": {q01, q99, mask, ...}, "proprio": {...}}}
    tokenizer files

-> ``<output>/``: config.json, model.safetensors, vlm/ (backbone configs + tokenizer), policy_preprocessor.json and
policy_postprocessor.json with the statistics: ``lerobot-eval --policy.path=<output>`` loads it. The config
carries the released inference conventions (``docs/parity.md``): the positions the released code reads
(``condition_positions="released"``), the bf16-built RoPE tables of the Pro head (``rope_table="released"``),
the 0.9-area centre crop (``crop_area=0.9``) and the gripper mapping of the released evaluation
(``gripper_to_env``, from the dataset key); no device (the loading machine picks one) and a merged backbone
without LoRA adapters (``training_mode="frozen"``; fine-tune with ``--policy.training_mode=lora``).

``base-vlm``: the Prismatic base VLM (``prism-qwen25-extra-dinosiglip-224px-0_5b``)::

    config.json                           {"model": {"vision_backbone_id", "llm_backbone_id", "image_resize_strategy", ...}}
    checkpoints/latest-checkpoint.pt      {"model": {"projector": {...}, "llm_backbone": {...}[, "vision_backbone": {...}]}}

-> a Prismatic directory to train from (``--policy.vlm_path=<output>``). When the checkpoint has no vision weights
(Prismatic saves only the trained modules), pass the timm towers' ``model.safetensors`` with ``--dino_weights`` and
``--siglip_weights``.

Every ``.pt`` file is read with ``torch.load(..., weights_only=True)``; every released tensor is checked
(``lerobot_vla_plugins.convert.checks.check_weights``: per-module summary printed, non-finite or exploding weights
refused unless ``--allow_bad_weights``); outputs are written to a temporary sibling and moved into place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lerobot_vla_plugins.convert.checks import add_allow_bad_weights_argument, check_weights
from lerobot_vla_plugins.convert.prismatic import build_prismatic_backbone, sub_state_dict
from lerobot_vla_plugins.errors import ConversionError

LIBERO_CAMERAS = ("observation.images.image", "observation.images.image2")
QWEN_CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
#: Area of the centre crop the released evaluation takes (``center_crop=True``, ``crop_scale = 0.9``).
RELEASED_CROP_AREA = 0.9

# released Pro block -> ours; the original block's names are already ours except the gate
_PRO_NAMES = {"k_adapter": "k_cond", "v_adapter": "v_cond", "k_task": "k_raw", "v_task": "v_raw"}
_HEAD_TOP = {
    "layer_norm1": "input_norm",
    "fc1": "input_proj",
    "layer_norm2": "output_norm",
    "fc2": "output_proj",
}


def load_pt(path: Path) -> dict[str, Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v for k, v in state.items()}


def head_variant(head_sd: dict[str, Tensor]) -> str:
    """``pro`` when the released head has per-source projections (``k_self``), else ``original``."""
    return "pro" if any(".k_self." in k for k in head_sd) else "original"


def convert_head(head_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Released ``L1RegressionActionHead`` state dict -> ``BridgeAttentionPolicy`` state dict. The Pro block's
    ``film_gen`` is dropped: the released forward never uses it."""
    out = {}
    for key, value in head_sd.items():
        parts = key.removeprefix("model.").split(".")
        if parts[0] in _HEAD_TOP:
            out[".".join([_HEAD_TOP[parts[0]], *parts[1:]])] = value
            continue
        if parts[0] != "mlp_resnet_blocks":
            raise ConversionError(f"unexpected key {key!r} in the action head checkpoint")
        i, name, rest = parts[1], parts[2], parts[3:]
        if name == "film_gen":
            continue
        if name == "ffn":
            out[".".join(["blocks", i, "ffn", *rest])] = value
        elif name == "gating_factor":
            out[f"blocks.{i}.attn.gate"] = value
        else:
            out[".".join(["blocks", i, "attn", _PRO_NAMES.get(name, name), *rest])] = value
    return out


def lerobot_stats(dataset_stats: dict, unnorm_key: str | None) -> tuple[str, dict, list[int]]:
    """``dataset_statistics.json`` -> (key used, LeRobot stats for action/observation.state, unnormalised dims)."""
    keys = sorted(dataset_stats)
    if unnorm_key is None:
        if len(keys) != 1:
            raise ConversionError(
                f"dataset_statistics.json has several entries {keys}; pass --unnorm_key=<one of them>"
            )
        unnorm_key = keys[0]
    if unnorm_key not in dataset_stats:
        raise ConversionError(
            f"--unnorm_key={unnorm_key!r} is not in dataset_statistics.json (entries: {keys})"
        )
    entry = dataset_stats[unnorm_key]
    stats = {}
    for src, dst in (("action", "action"), ("proprio", "observation.state")):
        stats[dst] = {
            k: np.asarray(v, dtype=np.float32)
            for k, v in entry[src].items()
            if k in ("mean", "std", "min", "max", "q01", "q99")
        }
    mask = entry["action"].get("mask", [True] * len(entry["action"]["q01"]))
    return unnorm_key, stats, [i for i, m in enumerate(mask) if not m]


def gripper_convention(unnorm_key: str) -> str:
    """The released evaluation's gripper mapping for a dataset key: ``libero_*`` -> "libero",
    ``calvin*`` -> "calvin", anything else "none" (the raw prediction, 1 = open / 0 = close)."""
    key = unnorm_key.lower()
    return "libero" if "libero" in key else "calvin" if "calvin" in key else "none"


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    missing = [t for t in QWEN_CHAT_TOKENS if t not in tok.get_vocab()]
    if missing:
        raise ConversionError(
            f"the tokenizer in {path} lacks {missing}: VLA-Adapter's prompt needs the Qwen chat tokens"
        )
    return tok


def convert_checkpoint(
    checkpoint: Path,
    output: Path,
    unnorm_key: str | None = None,
    camera_keys: tuple[str, ...] = LIBERO_CAMERAS,
    image_shape: tuple[int, int, int] = (3, 256, 256),
    chunk_size: int = 8,
    attention_variant: str | None = None,
    overwrite: bool = False,
    gripper_to_env: str | None = None,
    allow_bad_weights: bool = False,
) -> Path:
    """Released fine-tuned VLA-Adapter directory -> LeRobot checkpoint directory (see module docstring).

    Args:
        gripper_to_env: "none" | "libero" | "calvin"; None picks it from the dataset key (``gripper_convention``).
        allow_bad_weights: convert even when some released tensor is non-finite or exploding (only warn).

    Raises:
        ConversionError: missing files, ``attention_variant`` given and different from the head's, or bad
            weights (without ``allow_bad_weights``).
    """
    from lerobot.configs.types import FeatureType, PolicyFeature
    from safetensors.torch import load_file

    from lerobot_vla_plugins.atomic import atomic_directory

    from .configuration_vla_adapter import VLAAdapterConfig
    from .modeling_vla_adapter import _CHECKPOINT_VLM, CHECKPOINT_VLM_DIR, VLAAdapterPolicy, adapt_state_dict
    from .processor_vla_adapter import make_vla_adapter_pre_post_processors

    checkpoint = Path(checkpoint)
    heads = sorted(checkpoint.glob("action_head--*checkpoint.pt"))
    proprios = sorted(checkpoint.glob("proprio_projector--*checkpoint.pt"))
    for what, found in (
        ("action_head--*checkpoint.pt", heads),
        ("proprio_projector--*checkpoint.pt", proprios),
    ):
        if len(found) != 1:
            raise ConversionError(
                f"{checkpoint}: expected exactly one {what}, found {[p.name for p in found]}"
            )
    for name in ("config.json", "model.safetensors", "dataset_statistics.json"):
        if not (checkpoint / name).is_file():
            raise ConversionError(
                f"{checkpoint}: {name} missing; is this a released VLA-Adapter checkpoint directory?"
            )
    head_sd = load_pt(heads[0])
    variant = head_variant(head_sd)
    if attention_variant is not None and attention_variant != variant:
        raise ConversionError(
            f"--attention_variant={attention_variant} but {heads[0].name} is a '{variant}' head; "
            f"pass --attention_variant={variant} (or leave it out to detect it)"
        )
    proprio_sd = load_pt(proprios[0])
    prism_cfg = json.loads((checkpoint / "config.json").read_text())
    vla = load_file(str(checkpoint / "model.safetensors"))
    for sd, what in ((vla, "model.safetensors"), (head_sd, heads[0].name), (proprio_sd, proprios[0].name)):
        check_weights(sd, source=str(checkpoint / what), allow_bad=allow_bad_weights, log=print)
    image_size = int(prism_cfg.get("image_sizes", [224])[0])
    backbone = build_prismatic_backbone(
        sub_state_dict(vla, "vision_backbone.featurizer."),
        sub_state_dict(vla, "vision_backbone.fused_featurizer."),
        sub_state_dict(vla, "projector."),
        sub_state_dict(vla, "language_model.model."),
        prism_cfg["text_config"],
        _tokenizer(checkpoint),
        timm_model_ids=tuple(prism_cfg["timm_model_ids"]),
        image_size=image_size,
    )
    key, stats, raw_dims = lerobot_stats(
        json.loads((checkpoint / "dataset_statistics.json").read_text()), unnorm_key
    )
    state_dim = proprio_sd["fc1.weight"].shape[1]
    action_dim = head_sd["model.fc2.weight"].shape[0]
    queries = vla["action_queries.weight"]
    gripper = gripper_convention(key) if gripper_to_env is None else gripper_to_env
    config = VLAAdapterConfig(
        device="cpu",  # for building here; not written (below)
        chunk_size=chunk_size,
        n_action_steps=chunk_size,
        attention_variant=variant,
        condition_positions="released",
        rope_table="released" if variant == "pro" else "exact",
        crop_area=RELEASED_CROP_AREA,
        gripper_to_env=gripper,
        num_action_queries=queries.shape[0],
        num_heads=8,
        training_mode="frozen",  # merged weights, no LoRA adapters
        unnormalized_action_dims=raw_dims,
        input_features={
            **{k: PolicyFeature(FeatureType.VISUAL, tuple(image_shape)) for k in camera_keys},
            "observation.state": PolicyFeature(FeatureType.STATE, (state_dim,)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (action_dim,))},
    )
    state = {f"model.backbone.{k}": v for k, v in backbone.state_dict().items()}
    state |= {f"model.head.{k}": v for k, v in convert_head(head_sd).items()}
    state |= {f"model.proprio_proj.{k}": v for k, v in proprio_sd.items()}
    state["model.action_queries"] = queries
    with atomic_directory(output, overwrite=overwrite, what="checkpoint") as tmp:
        tmp = Path(tmp)
        backbone.save_pretrained(tmp / CHECKPOINT_VLM_DIR, weights=False)
        token = _CHECKPOINT_VLM.set(tmp / CHECKPOINT_VLM_DIR)
        try:
            policy = VLAAdapterPolicy(config)
        finally:
            _CHECKPOINT_VLM.reset(token)
        missing, unexpected = policy.load_state_dict(adapt_state_dict(policy, state), strict=False)
        if missing or unexpected:
            raise ConversionError(
                f"converted weights do not fit the policy: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        policy.save_pretrained(tmp)
        # no device in the config: the loading machine picks one (LeRobot's auto-selection, CUDA when present)
        cfg_json = json.loads((tmp / "config.json").read_text())
        cfg_json["device"] = None
        (tmp / "config.json").write_text(json.dumps(cfg_json, indent=4))
        pre, post = make_vla_adapter_pre_post_processors(config, dataset_stats=stats)
        pre.save_pretrained(tmp)
        post.save_pretrained(tmp)
        (tmp / "conversion.json").write_text(
            json.dumps(
                {
                    "source": str(checkpoint),
                    "unnorm_key": key,
                    "attention_variant": variant,
                    "gripper_to_env": gripper,
                    "dropped": "film_gen (unused by the released forward)" if variant == "pro" else "",
                },
                indent=2,
            )
        )
    return Path(output)


def convert_base_vlm(
    run_dir: Path,
    tokenizer: Path,
    output: Path,
    dino_weights: Path | None = None,
    siglip_weights: Path | None = None,
    text_config: Path | None = None,
    image_size: int = 224,
    overwrite: bool = False,
    allow_bad_weights: bool = False,
) -> Path:
    """Prismatic base VLM run directory -> Prismatic directory (see module docstring).

    Args:
        tokenizer: a directory with the Qwen2.5 tokenizer (e.g. a released VLA-Adapter checkpoint).
        text_config: JSON with the language model's HF config; defaults to Qwen2.5-0.5B's (the shipped preset)
            with the vocabulary size taken from the weights.
        image_size: input resolution of the towers (224 for ``dinosiglip-224px``); position embeddings of
            towers stored at another resolution (timm's DINOv2 at 518) are resampled to it.
    """
    from safetensors.torch import load_file

    from lerobot_vla_plugins.atomic import atomic_directory
    from lerobot_vla_plugins.presets import load_preset

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "latest-checkpoint.pt"
    if not ckpt.is_file():
        raise ConversionError(
            f"{run_dir}: checkpoints/latest-checkpoint.pt missing; is this a Prismatic run directory?"
        )
    model = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    if "projector" not in model or "llm_backbone" not in model:
        raise ConversionError(f"{ckpt}: expected 'projector' and 'llm_backbone' weights")
    vision = model.get("vision_backbone", {})
    dino = sub_state_dict(vision, "dino_featurizer.")
    siglip = sub_state_dict(vision, "siglip_featurizer.")
    if not dino:
        if dino_weights is None:
            raise ConversionError(
                "the checkpoint has no vision weights; pass --dino_weights=<timm vit_large_patch14_reg4_dinov2 model.safetensors>"
            )
        dino = load_file(str(dino_weights))
    if not siglip:
        if siglip_weights is None:
            raise ConversionError(
                "the checkpoint has no vision weights; pass --siglip_weights=<timm vit_so400m_patch14_siglip_224 model.safetensors>"
            )
        siglip = load_file(str(siglip_weights))
    llm_sd = sub_state_dict(model["llm_backbone"], "llm.model.")
    for sd, what in (
        (dino, "DINOv2 tower"),
        (siglip, "SigLIP tower"),
        (model["projector"], "projector"),
        (model["llm_backbone"], "language model"),
    ):
        check_weights(sd, source=f"{run_dir} ({what})", allow_bad=allow_bad_weights, log=print)
    text = (
        json.loads(Path(text_config).read_text())
        if text_config
        else dict(load_preset("Qwen/Qwen2.5-0.5B")["config"])
    )
    backbone = build_prismatic_backbone(
        dino, siglip, model["projector"], llm_sd, text, _tokenizer(Path(tokenizer)), image_size=image_size
    )
    with atomic_directory(output, overwrite=overwrite, what="Prismatic directory") as tmp:
        backbone.save_pretrained(tmp)
    return Path(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lerobot-vla-adapter-convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("checkpoint", help="released fine-tuned VLA-Adapter -> LeRobot checkpoint")
    c.add_argument("--checkpoint", required=True, type=Path)
    c.add_argument("--output", required=True, type=Path)
    c.add_argument("--unnorm_key", default=None)
    c.add_argument(
        "--camera_keys", default=",".join(LIBERO_CAMERAS), help="comma-separated, in the released view order"
    )
    c.add_argument("--image_shape", default="3,256,256")
    c.add_argument("--chunk_size", type=int, default=8)
    c.add_argument("--attention_variant", choices=["original", "pro"], default=None)
    c.add_argument(
        "--gripper_to_env",
        choices=["auto", "none", "libero", "calvin"],
        default="auto",
        help="gripper mapping of the released evaluation; auto: from the dataset key",
    )
    c.add_argument("--overwrite", action="store_true")
    add_allow_bad_weights_argument(c)
    b = sub.add_parser("base-vlm", help="Prismatic base VLM -> Prismatic directory")
    b.add_argument("--run_dir", required=True, type=Path)
    b.add_argument("--tokenizer", required=True, type=Path)
    b.add_argument("--output", required=True, type=Path)
    b.add_argument("--dino_weights", type=Path)
    b.add_argument("--siglip_weights", type=Path)
    b.add_argument("--text_config", type=Path)
    b.add_argument("--image_size", type=int, default=224)
    b.add_argument("--overwrite", action="store_true")
    add_allow_bad_weights_argument(b)
    args = parser.parse_args(argv)
    try:
        if args.command == "checkpoint":
            out = convert_checkpoint(
                args.checkpoint,
                args.output,
                args.unnorm_key,
                tuple(args.camera_keys.split(",")),
                tuple(int(x) for x in args.image_shape.split(",")),
                args.chunk_size,
                args.attention_variant,
                args.overwrite,
                gripper_to_env=None if args.gripper_to_env == "auto" else args.gripper_to_env,
                allow_bad_weights=args.allow_bad_weights,
            )
        else:
            out = convert_base_vlm(
                args.run_dir,
                args.tokenizer,
                args.output,
                args.dino_weights,
                args.siglip_weights,
                args.text_config,
                args.image_size,
                args.overwrite,
                allow_bad_weights=args.allow_bad_weights,
            )
    except (ValueError, FileExistsError) as err:
        print(f"lerobot-vla-adapter-convert: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
