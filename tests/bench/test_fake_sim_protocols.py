"""LIBERO, RoboTwin and CALVIN protocols run end to end through the installed lerobot-eval, with each simulator
runtime replaced at its boundary (``lerobot_vla_tools.testing.sim_fakes``) and an untrained tiny evo1.

Each test is one ``lerobot-vla-bench`` call whose units are real ``lerobot-eval`` processes; the scripted
simulators decide success, so the expected tables are computed here independently of the evaluator.
"""

import sys

import pytest
from lerobot_vla_tools.bench.cli import main
from lerobot_vla_tools.testing.sim_fakes import libero_success, robotwin_success

FAKE_EVAL = f"{sys.executable} -m lerobot_vla_tools.testing.fake_sim_eval"
# The tiny checkpoints predict chunks of 8 and use 4 denoising steps; the Evo-1 presets' 14/37 actions per query
# and 50 steps are overridden (a real Evo-1 checkpoint keeps them).
TINY = ["--policy.device=cpu", "--policy.n_action_steps=8", "--policy.num_inference_timesteps=4"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for k, v in {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MUJOCO_GL": "egl"}.items():
        monkeypatch.setenv(k, v)


def run_bench(*args) -> None:
    assert main(list(args)) == 0


def read_units(out):
    import csv

    with open(out / "per_unit.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_libero_protocol_runs_lerobots_libero_env_on_a_fake_libero(tmp_path, tiny_evo1):
    out = tmp_path / "libero"
    run_bench(
        "--protocol=libero", "--tasks=libero_spatial:1,libero_10:0", "--trials=3", "--seeds=[1000]", f"--output_dir={out}",
        f"--policy.path={tiny_evo1['libero']}", *TINY,
        "--env.episode_length=16", "--env.observation_height=64", "--env.observation_width=64",
        f"--lerobot_eval={FAKE_EVAL} --fake=libero",
    )  # fmt: skip
    # Episode e of task t starts from init state e and succeeds iff (t + e) is even: task 1 -> 1/3, task 0 -> 2/3.
    expected = [sum(libero_success(t, e) for e in range(3)) for t in (1, 0)]
    assert [int(r["successes"]) for r in read_units(out)] == expected == [1, 2]
    table = (out / "table.md").read_text()
    assert "| **evo1 (libero) + evo1 preset** | 33.3 | - | - | 66.7 | 50.0 | this run (6 episodes) |" in table
    assert (out / "chart.png").stat().st_size > 0


def test_robotwin_protocol_runs_easy_and_hard_settings_on_a_fake_robotwin(tmp_path, tiny_evo1):
    out = tmp_path / "robotwin"
    run_bench(
        "--protocol=robotwin", "--tasks=click_alarmclock", "--trials=4", "--seeds=[1000]", f"--output_dir={out}",
        f"--policy.path={tiny_evo1['robotwin']}", *TINY, "--env.episode_length=5",
        f"--lerobot_eval={FAKE_EVAL} --fake=robotwin",
    )  # fmt: skip
    # Episode seeds 1000..1003; the hard setting reaches the task only through robotwin_randomized's config.
    easy = sum(robotwin_success(s, randomized=False) for s in range(1000, 1004))
    hard = sum(robotwin_success(s, randomized=True) for s in range(1000, 1004))
    units = {r["difficulty"]: int(r["successes"]) for r in read_units(out)}
    assert units == {"easy": easy, "hard": hard} == {"easy": 2, "hard": 1}
    assert "| **evo1 (robotwin) + evo1 preset** | 50.0 | 25.0 | 37.5 |" in (out / "table.md").read_text()


def test_calvin_protocol_scores_chains_through_lerobot_eval_rewards(tmp_path, tiny_evo1):
    from lerobot_env_calvin.benchmark import get_chains
    from lerobot_env_calvin.testing import expected_length

    dataset = tmp_path / "task_ABC_D"
    (dataset / "validation").mkdir(parents=True)
    out = tmp_path / "calvin"
    run_bench(
        "--protocol=calvin", "--trials=4", "--chains_per_unit=4", f"--output_dir={out}",
        f"--policy.path={tiny_evo1['calvin']}", *TINY, f"--env.dataset_path={dataset}", "--env.subtask_max_steps=3",
        f"--lerobot_eval={FAKE_EVAL} --fake=calvin",
    )  # fmt: skip
    lengths = [expected_length(chain, max_steps=3) for _, chain in get_chains()[:4]]
    (unit,) = read_units(out)
    assert float(unit["sum_rewards"]) == sum(lengths)
    import json

    ours = json.loads((out / "results.json").read_text())["ours"]["values"]
    assert [ours[str(k)] for k in range(1, 6)] == pytest.approx(
        [100 * sum(n >= k for n in lengths) / 4 for k in range(1, 6)]
    )
    assert ours["avg_len"] == pytest.approx(sum(lengths) / 4)
