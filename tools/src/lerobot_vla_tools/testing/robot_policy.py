"""A tiny LeRobot ``evo1`` checkpoint whose features match a robot, built in-process (for rollout tests and dry runs).

The checkpoint is LeRobot's own ``Evo1Policy`` on a tiny real InternVL (:func:`build_tiny_internvl`) with untrained
weights, plus its real pre/post-processors whose MIN_MAX normalizer statistics come from the robot's joint limits.
It drives a robot with ``lerobot-rollout --policy.path=<dir>`` exactly like a trained checkpoint; its actions are not
meaningful (the robot's safety layer keeps them inside limits).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lerobot.policies.pretrained import PreTrainedPolicy
    from lerobot.processor import PolicyProcessorPipeline

#: evo1 overrides for a model that runs on a CPU in seconds (see the README, "Robots").
TINY_EVO1 = {
    "image_resolution": (32, 32),
    "embed_dim": 64,
    "hidden_dim": 128,
    "state_hidden_dim": 128,
    "num_heads": 4,
    "num_layers": 2,
    "chunk_size": 8,
    "n_action_steps": 8,
    "vlm_num_layers": 4,
    "vlm_dtype": "float32",
    "use_flash_attn": False,
    "max_text_length": 256,
    "num_inference_timesteps": 4,
    "enable_gradient_checkpointing": False,
    "use_amp": False,
}


def robot_features(
    lower: Sequence[float], upper: Sequence[float], cameras: dict[str, tuple[int, int]]
) -> tuple[dict, dict, dict]:
    """(input features, output features, normaliser statistics) of a robot whose state and action are its
    ``len(lower)`` joint keys; the statistics (min/max, q01/q99, mean, std) come from the joint limits.

    Args:
        lower, upper: per-key limits in the robot's action order (state = action keys for our arms).
        cameras: ``{name: (height, width)}``; the features become ``observation.images.<name>``.
    """
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature

    n = len(lower)
    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(n,))}
    for name, (h, w) in cameras.items():
        inputs[f"observation.images.{name}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, h, w))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(n,))}
    lo, hi = torch.tensor(lower, dtype=torch.float32), torch.tensor(upper, dtype=torch.float32)
    stats_one = {
        "min": lo,
        "max": hi,
        "mean": (lo + hi) / 2,
        "std": (hi - lo) / 4,
        "q01": lo,
        "q99": hi,
        "count": torch.tensor([1000]),
    }
    return inputs, outputs, {"observation.state": dict(stats_one), "action": dict(stats_one)}


def save_checkpoint(
    out_dir: Path,
    policy: PreTrainedPolicy,
    preprocessor: PolicyProcessorPipeline,
    postprocessor: PolicyProcessorPipeline,
) -> Path:
    """Write a policy and its pre/post-processors into ``out_dir`` atomically, as ``lerobot-train`` would."""
    from lerobot_vla_plugins.atomic import atomic_directory

    with atomic_directory(Path(out_dir), overwrite=True) as tmp:
        policy.save_pretrained(tmp)
        preprocessor.save_pretrained(tmp)
        postprocessor.save_pretrained(tmp)
    return Path(out_dir)


def sim_rollout_args(
    ckpt: Path,
    robot_type: str,
    robot_args: Sequence[str],
    root: Path,
    repo_id: str,
    seconds: float = 6.0,
    task: str = "pick up the can",
) -> list[str]:
    """``lerobot-rollout`` arguments for one recorded episode of ``ckpt`` on a robot (``robot_args``: backend,
    cameras, ...), 30 fps, no push, no sounds."""
    return [
        "--strategy.type=episodic",
        f"--policy.path={ckpt}",
        "--policy.device=cpu",
        f"--robot.type={robot_type}",
        *robot_args,
        f"--task={task}",
        "--fps=30",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--dataset.num_episodes=1",
        f"--dataset.episode_time_s={seconds}",
        "--dataset.reset_time_s=0",
        "--dataset.push_to_hub=false",
        f"--dataset.single_task={task}",
        "--play_sounds=false",
    ]


def build_tiny_evo1_for_robot(
    out_dir: Path,
    vlm_path: Path,
    lower: Sequence[float],
    upper: Sequence[float],
    cameras: dict[str, tuple[int, int]],
) -> Path:
    """Saves an ``evo1`` checkpoint for a robot with ``len(lower)`` state/action keys and ``cameras``.

    Args:
        out_dir: target directory (written atomically).
        vlm_path: a tiny InternVL checkpoint directory.
        lower, upper: per-key limits in the robot's action order (state = action keys for our arms).
        cameras: ``{name: (height, width)}``; the features become ``observation.images.<name>``.
    Returns:
        ``out_dir``.
    """
    import torch
    from lerobot.policies.evo1.configuration_evo1 import Evo1Config
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy
    from lerobot.policies.evo1.processor_evo1 import make_evo1_pre_post_processors

    inputs, outputs, stats = robot_features(lower, upper, cameras)
    cfg = Evo1Config(
        vlm_model_name=str(vlm_path),
        device="cpu",
        push_to_hub=False,
        input_features=inputs,
        output_features=outputs,
        **TINY_EVO1,
    )
    torch.manual_seed(0)
    policy = Evo1Policy(cfg)
    pre, post = make_evo1_pre_post_processors(cfg, stats)
    return save_checkpoint(out_dir, policy, pre, post)
