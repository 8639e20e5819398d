"""RoboTwin's hard setting: LeRobot's RoboTwin env whose task gets the randomized scene settings."""

import lerobot_env_robotwin_randomized  # noqa: F401  (registers --env.type=robotwin_randomized)
import numpy as np
import pytest
from lerobot.envs.factory import make_env_config
from lerobot.envs.utils import env_to_policy_features
from lerobot_env_robotwin_randomized.robotwin_randomized import (
    RoboTwinRandomizedEnv,
    create_robotwin_randomized_envs,
)
from lerobot_vla_tools.testing.sim_fakes import FakeRoboTwinTask, install_fake_robotwin


def test_the_hard_setting_has_the_same_features_as_lerobots_robotwin():
    hard, easy = (
        make_env_config("robotwin_randomized", task="click_alarmclock"),
        make_env_config("robotwin", task="click_alarmclock"),
    )
    assert hard.type == "robotwin_randomized"
    assert env_to_policy_features(hard) == env_to_policy_features(easy)


def test_setup_demo_receives_the_randomized_scene_settings(monkeypatch):
    install_fake_robotwin(monkeypatch.setattr)
    env = RoboTwinRandomizedEnv(task_name="click_alarmclock")
    obs, _ = env.reset(seed=8)
    task = env._env
    assert isinstance(task._task, FakeRoboTwinTask) and task.randomized and task.seed == 8
    assert obs["pixels"]["head_camera"].shape == (240, 320, 3) and obs["agent_pos"].shape == (14,)
    env.step(np.zeros(14, dtype=np.float32))
    assert task.steps == 1  # everything but setup_demo is the task's own


def test_without_robotwin_the_error_says_how_to_install_it():
    env = RoboTwinRandomizedEnv(task_name="click_alarmclock")
    with pytest.raises(ModuleNotFoundError, match="Ensure RoboTwin 2.0 is installed"):
        env.reset()


def test_unknown_tasks_are_refused():
    with pytest.raises(ValueError, match="unknown RoboTwin tasks"):
        create_robotwin_randomized_envs(task="click_the_clock", n_envs=1, use_async_envs=False)
