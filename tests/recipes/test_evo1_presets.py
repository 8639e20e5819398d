"""Evo-1's evaluation settings as presets for LeRobot's upstream evo1 policy."""

import pytest
from lerobot.policies.evo1.configuration_evo1 import Evo1Config
from lerobot_vla_tools.recipes.evo1_presets import LIBERO_SUITES, evo1_preset


@pytest.mark.parametrize(
    ("benchmark", "suite", "steps", "views", "state_dim"),
    [
        ("metaworld", None, 15, 1, 4),  # client HORIZON = 15, one camera
        ("libero", "libero_goal", 14, 2, 8),  # client horizon = 14, agentview + wrist
        ("robotwin", None, 37, 3, 14),  # deploy_policy.yml horizon 37, head + 2 wrists
    ],
)
def test_presets_carry_the_official_clients_actions_per_query_views_and_state(
    benchmark, suite, steps, views, state_dim
):
    preset = evo1_preset(benchmark, suite)
    assert preset.n_action_steps == steps == preset.policy_flags["n_action_steps"]
    assert (
        preset.num_inference_timesteps == 50 == preset.policy_flags["num_inference_timesteps"]
    )  # Evo1_server.py
    assert len(preset.views) == views and preset.state_dim == state_dim
    assert preset.sources and preset.differences


def test_preset_policy_flags_are_valid_evo1_config_fields():
    for preset in [
        evo1_preset("metaworld"),
        evo1_preset("robotwin"),
        *(evo1_preset("libero", s) for s in LIBERO_SUITES),
    ]:
        config = Evo1Config(
            **preset.policy_flags
        )  # LeRobot's own validation (n_action_steps <= chunk_size 50, ...)
        assert config.n_action_steps == preset.n_action_steps


def test_libero_episode_length_is_the_clients_queries_times_its_horizon():
    # libero_client_4tasks.py: max_steps = [25, 25, 25, 95] queries of 14 actions.
    lengths = {s: evo1_preset("libero", s).env_flags["episode_length"] for s in LIBERO_SUITES}
    assert lengths == {"libero_spatial": 350, "libero_object": 350, "libero_goal": 350, "libero_10": 1330}


def test_libero_gripper_is_binarized_as_the_official_client_does():
    flags = evo1_preset("libero", "libero_spatial").policy_flags
    # a6 > 0.5 -> -1 (open), else +1 (close); the 24-D padded action is cropped to LIBERO's 7.
    assert (
        flags["gripper_threshold"],
        flags["gripper_above_threshold_value"],
        flags["gripper_below_threshold_value"],
    ) == (0.5, -1.0, 1.0)
    assert flags["binarize_gripper"] is True and flags["postprocess_action_dim"] == 7


def test_rename_map_follows_the_view_slots():
    preset = evo1_preset("robotwin")
    ckpt = [
        "observation.images.cam_high",
        "observation.images.cam_left_wrist",
        "observation.images.cam_right_wrist",
    ]
    assert preset.rename_map(ckpt) == {
        "observation.images.head_camera": "observation.images.cam_high",
        "observation.images.left_camera": "observation.images.cam_left_wrist",
        "observation.images.right_camera": "observation.images.cam_right_wrist",
    }
    assert preset.rename_map(list(preset.views)) == {}  # already the env's names
    assert (
        evo1_preset("metaworld").rename_map(["observation.images.a", "observation.images.b"]) == {}
    )  # more views than the env has


@pytest.mark.parametrize(
    ("benchmark", "suite", "match"),
    [
        ("calvin", None, "unknown benchmark 'calvin'"),
        ("libero", "libero_100", "unknown LIBERO suite"),
        ("libero", None, "needs a suite"),
    ],
)
def test_unknown_benchmarks_and_suites_are_refused(benchmark, suite, match):
    with pytest.raises(ValueError, match=match):
        evo1_preset(benchmark, suite)
