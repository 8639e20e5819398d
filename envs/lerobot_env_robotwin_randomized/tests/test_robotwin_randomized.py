"""RoboTwin's hard setting: LeRobot's RoboTwin env whose task gets the randomized scene settings."""

import sys

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


# RoboTwin 2.0's task_config/demo_randomized.yml (RoboTwin-Platform/RoboTwin), the part around the block read here
DEMO_RANDOMIZED_YML = """\
render_freq: 0
episode_num: 50
embodiment: [aloha-agilex]
domain_randomization:
  random_background: true
  cluttered_table: true
  clean_background_rate: 0.02
  random_head_camera_dis: 0
  random_table_height: 0.03
  random_light: true
  crazy_random_light_rate: 0.02
camera:
  head_camera_type: D435
"""


def test_setup_demo_receives_the_randomized_scene_settings_read_from_robotwins_yaml(monkeypatch, tmp_path):
    # The task (SAPIEN + CuRobo) is faked; the YAML is read by the plugin's own reader, from a RoboTwin-like
    # ``envs`` package (``envs.CONFIGS_PATH``, as the installed RoboTwin has it).
    install_fake_robotwin(monkeypatch.setattr, randomized_config=False)
    (tmp_path / "robotwin" / "task_config").mkdir(parents=True)
    (tmp_path / "robotwin" / "task_config" / "demo_randomized.yml").write_text(DEMO_RANDOMIZED_YML)
    (tmp_path / "robotwin" / "envs").mkdir()
    configs = str(tmp_path / "robotwin" / "task_config")
    (tmp_path / "robotwin" / "envs" / "__init__.py").write_text(f"CONFIGS_PATH = {configs!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "robotwin"))
    monkeypatch.delitem(sys.modules, "envs", raising=False)

    env = RoboTwinRandomizedEnv(task_name="click_alarmclock")
    obs, _ = env.reset(seed=8)
    task = env._env
    assert isinstance(task._task, FakeRoboTwinTask) and task.randomized and task.seed == 8
    assert task.setup_kwargs["task_config"] == "demo_randomized"
    assert task.setup_kwargs["domain_randomization"] == {
        "random_background": True,
        "cluttered_table": True,
        "clean_background_rate": 0.02,
        "random_head_camera_dis": 0,
        "random_table_height": 0.03,
        "random_light": True,
        "crazy_random_light_rate": 0.02,
    }
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
