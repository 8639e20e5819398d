"""Fixtures of the A1 tests: tiny backbones, tiny policy configs and one real lerobot-train run shared by the
train / resume / eval / calibrate / push tests."""

from __future__ import annotations

from pathlib import Path

import pytest

#: A tiny expert whose head geometry (2 KV heads x 16) matches the tiny Molmo's and InternVL's Qwen2 (4 heads,
#: 2 KV heads, width 64), so the expert reads the VLM cache directly, as at paper size.
TINY_EXPERT = {"expert_hidden_size": 32, "expert_num_heads": 2, "expert_intermediate_size": 64}
TINY = {
    **TINY_EXPERT,
    "chunk_size": 4,
    "n_action_steps": 4,
    "exit_interval": 1,
    "device": "cpu",
    "push_to_hub": False,
}


def cli_flags(overrides: dict) -> list[str]:
    return [f"--policy.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in overrides.items()]


@pytest.fixture(scope="session")
def tiny_molmo(tmp_path_factory) -> Path:
    from lerobot_vla_tools.testing.molmo import build_tiny_molmo

    return build_tiny_molmo(tmp_path_factory.mktemp("tiny_molmo"))


@pytest.fixture(scope="session")
def metaworld_features():
    from lerobot_vla_plugins.features import metaworld_policy_features as mf

    return mf()


@pytest.fixture
def make_policy(tiny_molmo, metaworld_features):
    """Build an A1Policy with the tiny Molmo (or ``vlm_name``/``backbone_family`` overrides) for Meta-World."""
    from lerobot_policy_a1.configuration_a1 import A1Config
    from lerobot_policy_a1.modeling_a1 import A1Policy

    def build(**overrides):
        inputs, outputs = metaworld_features
        kw = {"backbone_family": "molmo", "vlm_name": str(tiny_molmo), **TINY, **overrides}
        return A1Policy(A1Config(input_features=dict(inputs), output_features=dict(outputs), **kw))

    return build


def _metaworld_batch(batch_size: int = 2, size: int = 64, seed: int = 0, tasks=None):
    import torch

    g = torch.Generator().manual_seed(seed)
    return {
        "observation.image": torch.rand(batch_size, 3, size, size, generator=g),
        "observation.state": torch.randn(batch_size, 4, generator=g),
        "action": torch.randn(batch_size, 4, 4, generator=g),
        "action_is_pad": torch.zeros(batch_size, 4, dtype=torch.bool),
        "task": tasks or ["press the button from the top"] * batch_size,
    }


@pytest.fixture
def make_batch():
    """``make_batch(batch_size=2, size=64, seed=0, tasks=None)``: a normalised Meta-World-like training batch."""
    return _metaworld_batch


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def trained_fm(tiny_molmo, metaworld_dataset, tmp_path_factory) -> Path:
    """One real ``lerobot-train --policy.type=a1`` run (flow matching, multi-exit "all", tiny Molmo), 4 steps."""
    from lerobot_vla_tools.testing.fixtures import run_cli

    repo_id, root = metaworld_dataset
    out = tmp_path_factory.mktemp("train_fm") / "out"
    run_cli(
        "lerobot-train",
        "--policy.type=a1",
        "--policy.backbone_family=molmo",
        f"--policy.vlm_name={tiny_molmo}",
        "--policy.exit_training=all",
        *cli_flags(TINY),
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=4",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=2",
        "--log_freq=1",
        f"--output_dir={out}",
    )
    return out
