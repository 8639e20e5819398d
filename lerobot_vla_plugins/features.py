"""Policy input/output features without building an environment or loading a dataset.

Used by the converters (a converted checkpoint needs its features) and by the tools that build policies.
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path


def metaworld_features():
    """(inputs, outputs) of ``lerobot-eval --env.type=metaworld``: one 480x480 camera, 4-D state and action."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {
        "observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 480)),
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(4,)),
    }
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(4,))}
    return inputs, outputs


def dataset_features(root: str):
    """(inputs, outputs) policy features of the LeRobot dataset at ``root`` (from its ``meta/info.json``)."""
    from lerobot.configs.types import FeatureType
    from lerobot.utils.feature_utils import dataset_to_policy_features

    info_path = Path(root).expanduser() / "meta" / "info.json"
    if not info_path.is_file():
        raise ValueError(
            f"features: {root!r} is neither 'metaworld' nor a LeRobot dataset root (no meta/info.json)"
        )
    feats = dataset_to_policy_features(jsonlib.loads(info_path.read_text())["features"])
    outputs = {k: f for k, f in feats.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in feats.items() if f.type is not FeatureType.ACTION}
    return inputs, outputs
