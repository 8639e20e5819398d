"""The CALVIN env wrapper with the simulator replaced at its boundary (a scripted CalvinRuntime)."""

import lerobot_env_calvin  # noqa: F401  (registers --env.type=calvin)
import numpy as np
import pytest
from lerobot.envs.factory import make_env_config
from lerobot.envs.utils import env_to_policy_features
from lerobot_env_calvin import calvin
from lerobot_env_calvin.benchmark import INSTRUCTIONS, get_chains, initial_scene
from lerobot_env_calvin.calvin import CalvinEnv, create_calvin_envs
from lerobot_env_calvin.testing import ScriptedCalvin, expected_length

from lerobot_vla_plugins.errors import ConfigError

CHAIN = ({"led": 0, "lightbulb": 0, "slider": "right", "drawer": "closed", "red_block": "table",
          "blue_block": "slider_left", "pink_block": "table", "grasped": 0},
         ("open_drawer", "turn_on_led", "move_slider_left", "turn_on_lightbulb", "push_red_block_left"))  # fmt: skip


def make_env(script, max_steps=4, **kwargs):
    runtime = ScriptedCalvin(script)
    env = CalvinEnv(lambda: runtime, chains=[CHAIN] * 3, subtask_max_steps=max_steps, **kwargs)
    return env, runtime


def run_to_end(env):
    rewards, infos = [], []
    env.reset()
    while True:
        _, reward, terminated, truncated, info = env.step(np.zeros(7, dtype=np.float32))
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            return rewards, infos, terminated, truncated


def test_calvin_is_a_registered_env_type_with_the_papers_observations():
    cfg = make_env_config("calvin")
    feats = env_to_policy_features(cfg)
    assert feats["observation.images.rgb_static"].shape == (3, 200, 200)
    assert feats["observation.images.rgb_gripper"].shape == (3, 84, 84)
    assert feats["observation.state"].shape == (15,)
    assert cfg.features["action"].shape == (7,)
    assert cfg.task == "ABC_D" and cfg.first_chain == 0 and cfg.subtask_max_steps == 360


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("task", "AB_C", "--env.task"),
        ("action_mode", "joint", "--env.action_mode"),
        ("first_chain", 1000, "--env.first_chain"),
        ("state_layout", "joints", "--env.state_layout"),
    ],
)
def test_bad_config_values_name_the_flag(field, value, match):
    with pytest.raises(ConfigError, match=match):
        make_env_config("calvin", **{field: value})


def test_without_calvin_installed_the_error_says_how_to_install_it(tmp_path):
    (tmp_path / "task_ABC_D" / "validation").mkdir(parents=True)
    with pytest.raises(
        ImportError, match="git clone --recurse-submodules https://github.com/mees/calvin.git"
    ):
        calvin._load_calvin_runtime(tmp_path / "task_ABC_D")


def test_dataset_path_must_be_the_split_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CALVIN_DATASET", raising=False)
    with pytest.raises(ValueError, match="--env.dataset_path is required"):
        calvin.resolve_dataset_path(None, "ABC_D")
    with pytest.raises(ValueError, match="no validation/ folder"):
        calvin.resolve_dataset_path(str(tmp_path), "ABC_D")
    (tmp_path / "task_D_D" / "validation").mkdir(parents=True)
    with pytest.raises(ValueError, match="pass --env.task=D_D"):
        calvin.resolve_dataset_path(str(tmp_path / "task_D_D"), "ABC_D")


def test_each_subtask_done_gives_reward_1_and_the_fifth_ends_the_chain_in_success():
    env, _ = make_env(lambda s: 2)
    rewards, infos, terminated, truncated = run_to_end(env)
    # 5 subtasks x 2 steps: a reward at steps 2, 4, 6, 8 and 10, success only at the end.
    assert rewards == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert terminated and not truncated
    assert [i["is_success"] for i in infos] == [False] * 9 + [True]
    assert infos[-1]["completed_subtasks"] == 5


def test_the_instruction_follows_the_subtask_in_progress():
    env, _ = make_env(lambda s: 2)
    env.reset()
    seen = [env.task_description]
    for _ in range(4):
        env.step(np.zeros(7, dtype=np.float32))
        env.step(np.zeros(7, dtype=np.float32))
        seen.append(env.task_description)
    assert seen == [INSTRUCTIONS[s] for s in CHAIN[1]]


def test_a_subtask_counts_only_if_all_before_it_succeeded():
    # turn_on_led (2nd) never happens; the 3rd-5th would be done at once if they were ever checked.
    env, runtime = make_env(lambda s: None if s == "turn_on_led" else 1, max_steps=4)
    rewards, infos, terminated, truncated = run_to_end(env)
    assert sum(rewards) == 1 and infos[-1]["completed_subtasks"] == 1
    assert truncated and not terminated and not infos[-1]["is_success"]
    assert len(rewards) == 1 + 4  # 1 step for open_drawer, then turn_on_led's whole budget
    assert set(runtime.queries) == {"open_drawer", "turn_on_led"}


def test_subtask_budget_is_subtask_max_steps():
    env, _ = make_env(lambda s: None, max_steps=7)
    rewards, _, _, truncated = run_to_end(env)
    assert len(rewards) == 7 and truncated
    assert env._max_episode_steps == 5 * 7


def test_reset_walks_this_sub_envs_chains_and_restores_their_start_scene():
    chains = get_chains()[:10]
    runtime = ScriptedCalvin()
    env = CalvinEnv(lambda: runtime, chains=chains, first_chain=1, stride=3)
    ids = []
    for _ in range(3):
        _, info = env.reset()
        ids.append(info["chain_id"])
    assert ids == [1, 4, 7]
    for (robot, scene), cid in zip(runtime.resets, ids, strict=False):
        want_robot, want_scene = initial_scene(chains[cid][0])
        assert np.array_equal(robot, want_robot) and np.array_equal(scene, want_scene)
    with pytest.raises(ValueError, match="lower --eval.n_episodes"):
        env.reset()


def test_relative_actions_reach_the_simulator_as_calvin_rel_actions_with_a_binary_gripper():
    env, runtime = make_env(lambda s: None)
    env.reset()
    env.step(np.array([0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 0.3], dtype=np.float32))
    env.step(np.array([0, 0, 0, 0, 0, 0, -0.2], dtype=np.float32))
    first, second = runtime.actions
    assert isinstance(first, np.ndarray) and first.shape == (7,)
    assert first[:6] == pytest.approx([0.1, -0.2, 0.3, 0.0, 0.5, -0.5]) and first[6] == 1
    assert second[6] == -1


def test_absolute_actions_reach_the_simulator_as_position_orientation_gripper():
    env, runtime = make_env(lambda s: None, action_mode="absolute")
    env.reset()
    env.step(np.array([0.4, 0.1, 0.6, 3.1, 0.0, 1.5, -1.0], dtype=np.float32))
    pos, orn, gripper = runtime.actions[0]
    assert pos == pytest.approx([0.4, 0.1, 0.6]) and orn == pytest.approx([3.1, 0.0, 1.5]) and gripper == -1


def test_observations_are_lerobot_pixels_and_state():
    env, _ = make_env(lambda s: None)
    obs, _ = env.reset()
    assert (
        obs["pixels"]["rgb_static"].shape == (200, 200, 3) and obs["pixels"]["rgb_static"].dtype == np.uint8
    )
    assert obs["pixels"]["rgb_gripper"].shape == (84, 84, 3)
    assert obs["agent_pos"].shape == (15,)
    assert env.observation_space.contains(obs)
    assert env.render().shape == (200, 200, 3)


def test_seer_state_layout_is_the_released_seven_d_state():
    """Seer / VITA-VLA CALVIN code: state = cat(robot_obs[..., :6], robot_obs[..., [-1]])."""
    env, runtime = make_env(lambda s: None, state_layout="seer")
    obs, _ = env.reset()
    robot_obs = runtime._obs()["robot_obs"]
    assert np.array_equal(obs["agent_pos"], np.concatenate([robot_obs[:6], robot_obs[-1:]]))
    assert env.observation_space.contains(obs)
    feats = env_to_policy_features(make_env_config("calvin", state_layout="seer"))
    assert feats["observation.state"].shape == (7,)


def test_frames_of_another_size_name_the_flag_to_set():
    runtime = ScriptedCalvin(static_size=224)
    env = CalvinEnv(lambda: runtime, chains=[CHAIN])
    with pytest.raises(ValueError, match="--env.static_size"):
        env.reset()


def test_vector_env_episode_e_is_chain_first_chain_plus_e(tmp_path, monkeypatch):
    (tmp_path / "task_ABC_D" / "validation").mkdir(parents=True)
    monkeypatch.setattr(calvin, "_load_calvin_runtime", lambda path: ScriptedCalvin())
    envs = create_calvin_envs(
        n_envs=2, dataset_path=str(tmp_path / "task_ABC_D"), first_chain=10, subtask_max_steps=3
    )
    vec = envs["calvin_ABC_D"][0]
    vec.reset(options={"lerobot_new_rollout": True})
    assert list(vec.call("chain_id")) == [10, 11]
    done = np.zeros(2, dtype=bool)
    total = np.zeros(2)
    for _ in range(vec.call("_max_episode_steps")[0] + 1):
        _, reward, terminated, truncated, _ = vec.step(np.zeros((2, 7), dtype=np.float32))
        total += reward * ~done
        done |= terminated | truncated
        if done.all():
            break
    chains = get_chains()
    assert total.tolist() == [expected_length(chains[10][1], 3), expected_length(chains[11][1], 3)]
    vec.reset(options={"lerobot_new_rollout": True})  # the next rollout: chains 12 and 13, none skipped
    assert list(vec.call("chain_id")) == [12, 13]
    vec.close()
