"""The local Meta-World demonstration builder (lerobot_vla_tools.data.metaworld)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lerobot_vla_tools.data import metaworld as mw
from lerobot_vla_tools.data.metaworld import MetaWorldBuildConfig, build_metaworld_dataset
from lerobot_vla_tools.data.metaworld_tasks import (
    ALL_TASKS,
    PAPER_PROMPTS,
    TASK_GROUPS,
    resolve_tasks,
)

TASK = "button-press-topdown-v3"


# ---------------------------------------------------------------------------------------------
# Task selection (Evo-1 supplement Table 3)
# ---------------------------------------------------------------------------------------------


def test_table3_groups_have_the_papers_sizes():
    assert {g: len(t) for g, t in TASK_GROUPS.items()} == {
        "easy": 28,
        "medium": 11,
        "hard": 6,
        "very_hard": 5,
    }
    assert len(ALL_TASKS) == len(set(ALL_TASKS)) == 50


def test_table3_grouping_equals_lerobots_metaworld_env():
    from lerobot.envs.metaworld import DIFFICULTY_TO_TASKS

    for group, tasks in TASK_GROUPS.items():
        assert sorted(tasks) == sorted(DIFFICULTY_TO_TASKS[group])


def test_table3_prompts_equal_the_eval_prompts_except_push_back():
    from lerobot.envs.metaworld import TASK_DESCRIPTIONS

    differing = {t for t in ALL_TASKS if PAPER_PROMPTS[t] != TASK_DESCRIPTIONS[t]}
    # Table 3 says "Push the puck back to a goal"; LeRobot's env (what lerobot-eval feeds) drops "back".
    assert differing == {"push-back-v3"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("button-press-topdown-v3", ["button-press-topdown-v3"]),
        ("button-press-topdown", ["button-press-topdown-v3"]),
        ("metaworld-reach-v3", ["reach-v3"]),
        ("nut-assembly", ["assembly-v3"]),  # Table 3 name
        ("door", ["door-open-v3"]),
        ("reach, reach-v3", ["reach-v3"]),  # duplicates dropped
    ],
)
def test_task_names_resolve_to_metaworld_v3_names(spec, expected):
    assert resolve_tasks(spec) == expected


def test_groups_and_all_expand_in_table_order():
    assert resolve_tasks("hard") == TASK_GROUPS["hard"]
    assert resolve_tasks("all") == ALL_TASKS
    assert resolve_tasks("very_hard,reach")[-1] == "reach-v3"


def test_unknown_task_error_lists_valid_names():
    with pytest.raises(ValueError, match="unknown Meta-World task or group 'press-the-button'.*Groups: easy"):
        resolve_tasks("press-the-button")


def test_empty_task_spec_is_rejected():
    with pytest.raises(ValueError, match="no Meta-World task given"):
        resolve_tasks(" , ")


# ---------------------------------------------------------------------------------------------
# Bad input leaves nothing behind
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("episodes", [0, -3])
def test_zero_episodes_is_a_clear_error(tmp_path, episodes):
    with pytest.raises(ValueError, match="episodes_per_task must be at least 1"):
        build_metaworld_dataset(MetaWorldBuildConfig(episodes_per_task=episodes, root=str(tmp_path / "ds")))
    assert not (tmp_path / "ds").exists()


def test_unknown_task_fails_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        build_metaworld_dataset(MetaWorldBuildConfig(tasks="not-a-task", root=str(tmp_path / "ds")))
    assert list(tmp_path.iterdir()) == []


def test_existing_root_is_refused_and_kept(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        build_metaworld_dataset(MetaWorldBuildConfig(root=str(root), episodes_per_task=1))
    assert (root / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# Bookkeeping with a synthetic expert (no rendering): seeds, skipped failures, success rate
# ---------------------------------------------------------------------------------------------


def _synthetic_expert(fail_seeds: set[int], length: int = 3):
    """Replaces the simulator rollout: seed s yields frames whose pixels/state/action encode s."""

    def episode(task, seed, render):
        if seed in fail_seeds:
            return {"success": False, "length": 500}
        out = {"success": True, "length": length}
        if render:
            out["image"] = np.full((length, *mw.IMAGE_SHAPE), seed, dtype=np.uint8)
            out["state"] = np.tile(np.array([seed, 0, 0, 1], dtype=np.float32), (length, 1))
            out["action"] = np.tile(np.array([seed / 10, 0, 0, -1], dtype=np.float32), (length, 1))
        return out

    return episode


def test_failed_expert_runs_are_skipped_and_counted(tmp_path, monkeypatch):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    monkeypatch.setattr(mw, "_expert_episode", _synthetic_expert({1, 2}))
    root = tmp_path / "ds"
    report = build_metaworld_dataset(
        MetaWorldBuildConfig(
            tasks=TASK,
            episodes_per_task=3,
            seed=0,
            root=str(root),
            repo_id="local/t",
            use_videos=False,
            progress=False,
        )
    )
    task_report = report.tasks[0]
    # seeds 0, 3, 4 succeed after 1 and 2 failed: 3 episodes from 5 attempts
    assert task_report.seeds == [0, 3, 4]
    assert (task_report.episodes, task_report.attempts) == (3, 5)
    assert report.expert_success_rate == pytest.approx(3 / 5)
    ds = LeRobotDataset("local/t", root=root)
    assert ds.meta.total_episodes == 3 and len(ds) == 9
    assert [float(ds[i]["observation.state"][0]) for i in (0, 3, 6)] == [0.0, 3.0, 4.0]
    saved = json.loads((root / "meta" / "build_report.json").read_text())
    assert saved["expert_success_rate"] == pytest.approx(0.6)


def test_a_task_whose_expert_keeps_failing_raises_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(mw, "_expert_episode", _synthetic_expert(set(range(100))))
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="expert failed 3 times"):
        build_metaworld_dataset(
            MetaWorldBuildConfig(
                tasks=TASK, episodes_per_task=1, root=str(root), max_failed_attempts=2, progress=False
            )
        )
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(mw, "_expert_episode", _synthetic_expert(set()))
    calls = {"n": 0}
    original = mw._record_task

    def record_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(mw, "_record_task", record_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_metaworld_dataset(
            MetaWorldBuildConfig(
                tasks="reach,button-press",
                episodes_per_task=1,
                root=str(tmp_path / "ds"),
                use_videos=False,
                progress=False,
            )
        )
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_only_after_completion(tmp_path, monkeypatch):
    monkeypatch.setattr(mw, "_expert_episode", _synthetic_expert(set()))
    root = tmp_path / "ds"
    root.mkdir()
    (root / "old.txt").write_text("old")
    build_metaworld_dataset(
        MetaWorldBuildConfig(
            tasks=TASK, episodes_per_task=1, root=str(root), overwrite=True, use_videos=False, progress=False
        )
    )
    assert not (root / "old.txt").exists() and (root / "meta" / "info.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_cli_reports_bad_input_with_exit_code_2(capsys):
    from lerobot_vla_tools.data.cli import main

    assert main(["metaworld", "--tasks=teleport-v3", "--root=/nonexistent/x"]) == 2
    assert "unknown Meta-World task or group 'teleport-v3'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Real simulator: recorded frames are what lerobot-eval feeds a policy
# ---------------------------------------------------------------------------------------------


def _eval_observations(seed: int, steps: list[int]):
    """Observations as lerobot-eval's rollout builds them: LeRobot's MetaworldEnv + preprocess_observation,
    stepping the scripted expert. Returns {step: (image (3,480,480), state (4,), expert action (4,))}."""
    from lerobot.envs.metaworld import MetaworldEnv
    from lerobot.envs.utils import preprocess_observation

    env = MetaworldEnv(TASK, obs_type="pixels_agent_pos")
    obs, _ = env.reset(seed=seed)
    raw = env._env._get_obs()
    out = {}
    for t in range(max(steps) + 1):
        action = np.clip(env.expert_policy.get_action(raw), -1, 1).astype(np.float32)
        if t in steps:
            batch = preprocess_observation({k: v[None] for k, v in obs.items()})
            out[t] = (batch["observation.image"][0], batch["observation.state"][0], action)
        obs, _, _, _, _ = env.step(action)
        raw = env._env._get_obs()
    env.close()
    return out


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("mw") / "ds"
    report = build_metaworld_dataset(
        MetaWorldBuildConfig(
            tasks=TASK,
            episodes_per_task=1,
            seed=7,
            root=str(root),
            repo_id="local/mw_img",
            use_videos=False,
            progress=False,
        )
    )
    return report, LeRobotDataset("local/mw_img", root=root)


def test_recorded_frames_are_exactly_the_eval_observations(image_dataset):
    report, ds = image_dataset
    steps = [0, 10, len(ds) - 1]
    expected = _eval_observations(seed=report.tasks[0].seeds[0], steps=steps)
    for t in steps:
        frame = ds[t]
        image, state, action = expected[t]
        assert frame["observation.image"].shape == (3, 480, 480)
        # Same keys, same orientation (corner2 flipped on both axes), same pixels, bit for bit.
        assert torch.equal(frame["observation.image"], image)
        assert torch.equal(frame["observation.state"], state.float())
        assert torch.equal(frame["action"], torch.from_numpy(action))
        assert frame["task"] == "Press a button from the top"


def test_episode_ends_on_the_success_step(image_dataset):
    report, ds = image_dataset
    rollout = mw._expert_episode(TASK, report.tasks[0].seeds[0], render=False)
    assert rollout["success"] and rollout["length"] == len(ds) == report.frames


def test_recording_is_deterministic_for_a_seed(image_dataset):
    report, ds = image_dataset
    seed = report.tasks[0].seeds[0]
    again = mw._expert_episode(TASK, seed, render=True)
    recorded = torch.stack([ds[i]["action"] for i in range(len(ds))]).numpy()
    np.testing.assert_array_equal(again["action"], recorded)
    np.testing.assert_array_equal(
        again["state"], torch.stack([ds[i]["observation.state"] for i in range(len(ds))]).numpy()
    )


def test_recording_after_another_env_was_closed_still_renders(image_dataset):
    """A LeRobot MetaworldEnv made and closed in the same process (as the eval-comparison tests do) frees
    its EGL context; a later recording must still render the scene, not black frames."""
    report, ds = image_dataset
    _eval_observations(seed=report.tasks[0].seeds[0], steps=[0])
    again = mw._expert_episode(TASK, report.tasks[0].seeds[0], render=True)
    assert again["image"].any()
    recorded = (ds[3]["observation.image"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(again["image"][3], recorded)


def test_video_frames_match_the_eval_observation_up_to_compression(metaworld_dataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    repo_id, root = metaworld_dataset
    ds = LeRobotDataset(repo_id, root=root)
    report = json.loads((root / "meta" / "build_report.json").read_text())
    expected = _eval_observations(seed=report["tasks"][0]["seeds"][0], steps=[5])
    image, state, _ = expected[5]
    frame = ds[5]["observation.image"]
    err = (frame - image).abs().mean().item()
    flipped_err = (frame - image.flip(-1, -2)).abs().mean().item()
    assert err < 0.02, f"mean abs error {err:.4f} exceeds lossy-video tolerance"
    assert flipped_err > 5 * err  # the orientation is the eval one, not the raw camera's
    assert torch.equal(ds[5]["observation.state"], state.float())
