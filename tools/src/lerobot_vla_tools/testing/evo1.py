"""LeRobot's ``evo1`` at test size: ``lerobot-train`` flags for the testing kit's tiny InternVL, and untrained
tiny checkpoints for any env's features.

:func:`build_tiny_evo1_checkpoint` saves an untrained tiny ``evo1`` (random weights, unit statistics) loadable with
``lerobot-eval --policy.path``, so evaluation tooling can be tested on benchmarks whose training data is not
available here (LIBERO, RoboTwin, CALVIN).
"""

from __future__ import annotations

import json
from pathlib import Path

from lerobot_vla_plugins.atomic import atomic_directory

#: ``--policy.*`` flags of a tiny evo1 for the 32 px, 4-layer InternVL of ``build_tiny_internvl``
#: (add ``--policy.vlm_model_name=<its path>``).
TINY_EVO1_FLAGS: tuple[str, ...] = (
    "--policy.type=evo1",
    "--policy.image_resolution=[32,32]",
    "--policy.embed_dim=64",
    "--policy.hidden_dim=128",
    "--policy.state_hidden_dim=128",
    "--policy.num_heads=4",
    "--policy.num_layers=2",
    "--policy.chunk_size=8",
    "--policy.n_action_steps=8",
    "--policy.vlm_num_layers=4",
    "--policy.vlm_dtype=float32",
    "--policy.use_flash_attn=false",
    "--policy.max_text_length=256",
    "--policy.num_inference_timesteps=4",
    "--policy.enable_gradient_checkpointing=false",
    "--policy.device=cpu",
    "--policy.push_to_hub=false",
)


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
        vlm_path: a tiny InternVL from :func:`lerobot_vla_tools.testing.build_tiny_internvl`.
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
    for flag in TINY_EVO1_FLAGS:
        key, text = flag.removeprefix("--policy.").split("=", 1)
        if key in ("type", "device", "push_to_hub"):
            continue
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
