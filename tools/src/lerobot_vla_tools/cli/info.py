"""``lerobot-vla-info``: parameter counts of any registered policy type, built on the meta device.

No weights are read and nothing is downloaded: backbones named by a Hub id are built from the config-only
presets of ``lerobot_vla_plugins.presets`` (see ``testing.weightless``), local checkpoints from their
``config.json``. A policy's config defaults are its paper's full-size settings, so with no overrides this
reports the paper-size model.

Usage::

    lerobot-vla-info --policy.type=evo1
    lerobot-vla-info --policy.type=evo1 --policy.vlm_num_layers=24 --depth=3
    lerobot-vla-info --policy.type=vla_adapter --json=true
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import draccus
from lerobot.configs.policies import PreTrainedConfig

from lerobot_vla_plugins.features import dataset_features, metaworld_policy_features

if TYPE_CHECKING:
    from lerobot.policies.pretrained import PreTrainedPolicy
    from torch import nn


@dataclass
class InfoConfig:
    policy: PreTrainedConfig | None = None
    # Input/output features the policy is built for: "metaworld" (one 480x480 camera, 4-D state and action,
    # what lerobot-eval --env.type=metaworld feeds) or the root directory of a LeRobot dataset.
    features: str = "metaworld"
    # Depth of the per-module breakdown (1 = top-level children of the policy).
    depth: int = 2
    # Print one JSON object (total_params, trainable_params, modules, ...) instead of a table.
    json: bool = False


def build_on_meta(policy_cfg: PreTrainedConfig, features: str = "metaworld") -> PreTrainedPolicy:
    """Instantiate the policy of ``policy_cfg`` with no weights: every parameter on the meta device."""
    import torch
    from lerobot.policies.factory import get_policy_class

    from lerobot_vla_tools.testing.weightless import weightless_kwargs, weightless_pretrained

    inputs, outputs = metaworld_policy_features() if features == "metaworld" else dataset_features(features)
    if not policy_cfg.input_features:
        policy_cfg.input_features = inputs
    if not policy_cfg.output_features:
        policy_cfg.output_features = outputs
    policy_cfg.device = "meta"
    policy_cls = get_policy_class(policy_cfg.type)
    with weightless_pretrained("meta"), torch.device("meta"):
        return policy_cls(policy_cfg, **weightless_kwargs(policy_cls))


def count_parameters(module: nn.Module, depth: int = 2) -> dict:
    """Total and trainable parameters, with a breakdown by submodule down to ``depth`` levels.

    Shared (tied) parameters are counted once, at their first owner.
    """
    seen: set[int] = set()

    def own(m) -> tuple[int, int]:
        total = trainable = 0
        for p in m.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return total, trainable

    modules = {}
    for name, sub in module.named_modules():
        if not name or name.count(".") >= depth:
            continue
        seen_before = set(seen)
        total, trainable = own(sub)
        seen.clear()
        seen.update(seen_before)
        modules[name] = {"total": total, "trainable": trainable}
    seen.clear()
    total, trainable = own(module)
    return {"total_params": total, "trainable_params": trainable, "modules": modules}


def _fmt(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.3f}B"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def format_table(policy_type: str, counts: dict) -> str:
    lines = [
        f"policy: {policy_type}",
        f"total parameters:     {counts['total_params']:>15,} ({_fmt(counts['total_params'])})",
        f"trainable parameters: {counts['trainable_params']:>15,} ({_fmt(counts['trainable_params'])})",
        "",
        f"{'module':<60} {'total':>12} {'trainable':>12}",
    ]
    for name, c in counts["modules"].items():
        indent = "  " * name.count(".")
        lines.append(
            f"{indent + name.rsplit('.', 1)[-1]:<60} {_fmt(c['total']):>12} {_fmt(c['trainable']):>12}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import lerobot.policies  # noqa: F401  (registers the built-in policy types)
    from lerobot.utils.import_utils import register_third_party_plugins

    logging.basicConfig(level=logging.WARNING)
    register_third_party_plugins()
    cfg = draccus.parse(InfoConfig, args=sys.argv[1:] if argv is None else argv)
    if cfg.policy is None:
        known = ", ".join(sorted(PreTrainedConfig.get_known_choices()))
        print(
            f"lerobot-vla-info: error: pass --policy.type=<type>; registered types: {known}", file=sys.stderr
        )
        return 2
    try:
        policy = build_on_meta(cfg.policy, cfg.features)
    except ValueError as err:
        print(f"lerobot-vla-info: error: {err}", file=sys.stderr)
        return 2
    counts = count_parameters(policy, depth=cfg.depth)
    if cfg.json:
        print(jsonlib.dumps({"policy_type": cfg.policy.type, **counts}))
    else:
        print(format_table(cfg.policy.type, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
