"""Stage 1 feeds each model the state its own normaliser expects (issue 14).

The batch's ``observation.state`` is normalised for the student (MEAN_STD with this run's statistics). A converted
released Seer reads the raw state (the released ``train_one_epoch_calvin`` passes ``batch_calvin[7]`` unchanged
but for the gripper); a LeRobot-trained teacher reads the state normalised with *its* saved statistics. The
expected teacher inputs below are written out by hand from those two rules, not through the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lerobot.configs.types import NormalizationMode

from lerobot_vla_plugins.errors import ConfigError

IDENTITY = {
    "VISUAL": NormalizationMode.IDENTITY,
    "STATE": NormalizationMode.IDENTITY,
    "ACTION": NormalizationMode.IDENTITY,
}
MEAN = np.array([0.5, -1.0, 2.0, 0.0])
STD = np.array([2.0, 0.5, 1.5, 1.0])


def student_stats(mean=MEAN, std=STD) -> dict:
    return {
        "observation.state": {"mean": mean, "std": std},
        "action": {"min": -np.ones(4), "max": np.ones(4)},
    }


def stage_one_target(policy, batch, teacher_state):
    from lerobot_policy_seer.history import build_step_batch

    steps = build_step_batch(batch, policy.config.camera_keys, 2, 3)
    with torch.no_grad():
        mapped = policy.model(steps.images, steps.state, batch["task"])
        target = policy.teacher.model(
            policy.teacher.model.preprocess(steps.images), teacher_state(steps.state), batch["task"]
        ).action_features
    return (mapped - target).pow(2).sum(-1).sqrt().mean().item()


def test_a_converted_teacher_reads_the_raw_state(make_vita, vita_batch, save_teacher):
    """lerobot-seer-convert writes IDENTITY state normalisation and no statistics (the released model reads raw)."""
    teacher = save_teacher(stats=None, normalization_mapping=IDENTITY)
    policy = make_vita("align", teacher_path=str(teacher), dataset_stats=student_stats())
    batch = vita_batch(policy, leading_pad=(0, 0))
    mean, std = torch.tensor(MEAN, dtype=torch.float32), torch.tensor(STD, dtype=torch.float32)
    loss, _ = policy.forward(batch)
    # raw = normalised * std + mean (the inverse of the student's MEAN_STD)
    assert loss.item() == pytest.approx(stage_one_target(policy, batch, lambda s: s * std + mean), rel=1e-5)
    # the state handed over is the raw one, not the normalised one (the bug of issue 14)
    state = batch["observation.state"]
    assert torch.allclose(policy._teacher_state(state), state * std + mean)
    assert not torch.allclose(policy._teacher_state(state), state)


def test_a_lerobot_teacher_reads_the_state_normalised_with_its_own_statistics(
    make_vita, vita_batch, save_teacher
):
    theirs_mean, theirs_std = np.array([1.0, 0.0, -1.0, 0.5]), np.array([1.0, 3.0, 0.25, 2.0])
    teacher = save_teacher(stats=student_stats(theirs_mean, theirs_std))
    policy = make_vita("align", teacher_path=str(teacher), dataset_stats=student_stats())
    batch = vita_batch(policy, leading_pad=(0, 0))
    mean, std = torch.tensor(MEAN, dtype=torch.float32), torch.tensor(STD, dtype=torch.float32)
    t_mean = torch.tensor(theirs_mean, dtype=torch.float32)
    t_std = torch.tensor(theirs_std, dtype=torch.float32)

    def expected(s):  # LeRobot's MEAN_STD: (x - mean) / (std + 1e-8)
        return (s * std + mean - t_mean) / (t_std + 1e-8)

    loss, _ = policy.forward(batch)
    assert loss.item() == pytest.approx(stage_one_target(policy, batch, expected), rel=1e-5)


def test_the_same_normaliser_on_both_sides_passes_the_state_through(make_vita, save_teacher):
    teacher = save_teacher(stats=student_stats())
    policy = make_vita("align", teacher_path=str(teacher), dataset_stats=student_stats())
    assert policy._teacher_state.identity


def test_a_teacher_that_normalises_without_statistics_is_refused_naming_both_sides(make_vita, save_teacher):
    teacher = save_teacher(stats=None)  # MEAN_STD in its config, no statistics saved
    with pytest.raises(ConfigError) as err:
        make_vita("align", teacher_path=str(teacher), dataset_stats=student_stats())
    message = str(err.value)
    assert f"the seer teacher at {teacher} normalises observation.state with MEAN_STD" in message
    assert "has no mean/std statistics" in message
    assert (
        "the vita_vla student (this run's dataset statistics) normalises observation.state with MEAN_STD"
        in message
    )


def test_a_student_without_its_statistics_cannot_feed_a_raw_state_teacher(make_vita, save_teacher):
    teacher = save_teacher(stats=None, normalization_mapping=IDENTITY)
    with pytest.raises(ConfigError, match=r"the vita_vla student .* has no mean/std statistics") as err:
        make_vita("align", teacher_path=str(teacher), dataset_stats=None)
    assert f"the seer teacher at {teacher} reads observation.state raw (IDENTITY)" in str(err.value)


def test_resuming_checks_at_the_first_training_step_and_inference_never(make_vita, vita_batch, save_teacher):
    teacher = save_teacher(stats=None)
    policy = make_vita("align", pretrained=True, teacher_path=str(teacher), dataset_stats=None)
    policy.select_action(
        {
            "observation.image": torch.rand(1, 3, 64, 64),
            "observation.state": torch.randn(1, 4),
            "task": ["press"],
        }
    )
    with pytest.raises(ConfigError, match="has no mean/std statistics"):
        policy.forward(vita_batch(policy))
