"""Policy input/output features without building an environment or loading a dataset.

The layout ``lerobot-vla-data metaworld`` records (and ``lerobot-eval --env.type=metaworld`` feeds) lives here, in
the light library, because converters need a checkpoint's features as much as the data builder does.
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lerobot.configs.types import PolicyFeature

IMAGE_KEY = "observation.image"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_SHAPE = (480, 480, 3)
STATE_NAMES = ["hand_x", "hand_y", "hand_z", "gripper"]
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "gripper"]


def metaworld_features(use_videos: bool = False) -> dict:
    """LeRobot feature spec of a Meta-World demonstration dataset."""
    return {
        IMAGE_KEY: {
            "dtype": "video" if use_videos else "image",
            "shape": IMAGE_SHAPE,
            "names": ["height", "width", "channels"],
        },
        STATE_KEY: {"dtype": "float32", "shape": (4,), "names": STATE_NAMES},
        ACTION_KEY: {"dtype": "float32", "shape": (4,), "names": ACTION_NAMES},
    }


def policy_features(features: dict[str, dict]) -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """(input_features, output_features) a policy is built for, from a LeRobot dataset's ``features``."""
    from lerobot.configs.types import FeatureType
    from lerobot.utils.feature_utils import dataset_to_policy_features

    feats = dataset_to_policy_features(features)
    outputs = {k: f for k, f in feats.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in feats.items() if f.type is not FeatureType.ACTION}
    return inputs, outputs


def metaworld_policy_features() -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """Policy features for Meta-World: one (3, 480, 480) camera, 4-D state and action, what ``lerobot-eval
    --env.type=metaworld`` feeds; derived from the layout ``lerobot-vla-data metaworld`` records."""
    return policy_features(metaworld_features())


def dataset_features(root: str) -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """Policy features of the LeRobot dataset at ``root`` (its ``meta/info.json``)."""
    info_path = Path(root).expanduser() / "meta" / "info.json"
    if not info_path.is_file():
        raise ValueError(
            f"features: {root!r} is neither 'metaworld' nor a LeRobot dataset root (no meta/info.json)"
        )
    return policy_features(jsonlib.loads(info_path.read_text())["features"])
