"""Tiny LeRobot ``evo1`` checkpoints for tests of evaluation tooling.

``TINY_EVO1_FLAGS`` are the ``--policy.*`` values that make LeRobot's upstream ``evo1`` tiny (with the testing
kit's tiny InternVL); :func:`build_tiny_evo1_checkpoint` saves an untrained one (random weights, unit statistics)
for any set of env features, loadable with ``lerobot-eval --policy.path``, so evaluation plumbing can be tested
on benchmarks whose training data is not available here (LIBERO, RoboTwin, CALVIN).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.atomic import atomic_directory

#: evo1 fields for a tiny model, as --policy.<field> values (strings, as on a command line).
TINY_EVO1_FLAGS: dict[str, str] = {
    "image_resolution": "[32,32]",
    "embed_dim": "64",
    "hidden_dim": "128",
    "state_hidden_dim": "128",
    "num_heads": "4",
    "num_layers": "2",
    "chunk_size": "8",
    "n_action_steps": "8",
    "vlm_num_layers": "4",
    "vlm_dtype": "float32",
    "use_flash_attn": "false",
    "max_text_length": "256",
    "num_inference_timesteps": "4",
    "enable_gradient_checkpointing": "false",
}


def tiny_evo1_cli_flags(vlm_path: str | Path) -> list[str]:
    """``--policy.*`` flags for ``lerobot-train --policy.type=evo1`` at tiny size."""
    return [f"--policy.vlm_model_name={vlm_path}"] + [f"--policy.{k}={v}" for k, v in TINY_EVO1_FLAGS.items()]


def build_tiny_evo1_checkpoint(
    path: str | Path,
    vlm_path: str | Path,
    cameras: dict[str, tuple[int, int, int]],
    state_dim: int,
    action_dim: int,
    seed: int = 0,
) -> Path:
    """Save an untrained tiny ``evo1`` policy with its processors into ``path`` (a ``pretrained_model`` dir).

    Args:
        path: output directory.
        vlm_path: a tiny InternVL from :func:`lerobot_vla_plugins.testing.build_tiny_internvl`.
        cameras: visual input keys -> (3, H, W), in view order, e.g. ``{"observation.images.image": (3, 256, 256)}``.
        state_dim: size of ``observation.state``.
        action_dim: size of ``action``.

    Returns:
        ``path``.
    """
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.evo1.configuration_evo1 import Evo1Config
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy
    from lerobot.policies.factory import make_pre_post_processors

    values = {}
    for key, text in TINY_EVO1_FLAGS.items():
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        values[key] = tuple(value) if isinstance(value, list) else value
    inputs = {k: PolicyFeature(type=FeatureType.VISUAL, shape=tuple(s)) for k, s in cameras.items()}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
    config = Evo1Config(
        vlm_model_name=str(vlm_path),
        device="cpu",
        push_to_hub=False,
        input_features=inputs,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))},
        **values,
    )
    torch.manual_seed(seed)
    policy = Evo1Policy(config)
    stats = {
        "observation.state": {"min": -torch.ones(state_dim), "max": torch.ones(state_dim)},
        "action": {"min": -torch.ones(action_dim), "max": torch.ones(action_dim)},
    }
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    with atomic_directory(path, overwrite=True, what="checkpoint") as tmp:
        tmp.mkdir()
        policy.save_pretrained(tmp)
        pre.save_pretrained(tmp)
        post.save_pretrained(tmp)
    return Path(path)
