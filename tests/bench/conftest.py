"""Fixtures of the protocol tests: LeRobot-format eval_info.json files, a stand-in evaluator for runner logic,
and tiny untrained evo1 checkpoints for the benchmarks whose data is not available here."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest


def eval_info(
    successes: list[bool], sum_rewards: list[float] | None = None, task_group: str = "t", eval_s: float = 1.0
) -> dict:
    """An eval_info.json payload with the structure lerobot-eval 0.6.1 writes (per_task / per_group / overall)."""
    sum_rewards = sum_rewards if sum_rewards is not None else [float(s) for s in successes]
    metrics = {"sum_rewards": sum_rewards, "max_rewards": [min(r, 1.0) for r in sum_rewards], "successes": successes,
               "video_paths": [], "predicted_video_paths": []}  # fmt: skip
    pc = 100.0 * sum(successes) / len(successes)
    agg = {"avg_sum_reward": sum(sum_rewards) / len(sum_rewards), "avg_max_reward": 1.0, "pc_success": pc,
           "n_episodes": len(successes), "video_paths": [], "predicted_video_paths": []}  # fmt: skip
    return {
        "per_task": [{"task_group": task_group, "task_id": 0, "metrics": metrics}],
        "per_group": {task_group: agg},
        "overall": {**agg, "eval_s": eval_s, "eval_ep_s": eval_s / len(successes)},
    }


@pytest.fixture
def write_eval_info():
    def _write(path: Path, successes, sum_rewards=None):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(eval_info(list(successes), sum_rewards)))
        return path

    return _write


FAKE_EVAL = textwrap.dedent(
    '''
    """Stands in for lerobot-eval in runner tests: writes eval_info.json (lerobot-eval's format) into --output_dir.
    An episode succeeds iff (seed + episode index) is even. Appends its arguments to $FAKE_EVAL_LOG; exits 1 for a
    unit whose --env.task equals $FAKE_EVAL_FAIL_TASK."""
    import json, os, sys
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
    with open(os.environ["FAKE_EVAL_LOG"], "a") as f:
        f.write(json.dumps(args) + "\\n")
    if args.get("env.task") == os.environ.get("FAKE_EVAL_FAIL_TASK"):
        print("simulated crash", file=sys.stderr)
        sys.exit(1)
    n, seed = int(args["eval.n_episodes"]), int(args["seed"])
    successes = [(seed + e) % 2 == 0 for e in range(n)]
    metrics = {"sum_rewards": [float(s) for s in successes], "max_rewards": [float(s) for s in successes],
               "successes": successes, "video_paths": [], "predicted_video_paths": []}
    out = {"per_task": [{"task_group": args.get("env.task", "t"), "task_id": 0, "metrics": metrics}],
           "per_group": {}, "overall": {"pc_success": 100.0 * sum(successes) / n, "n_episodes": n, "eval_s": 0.1}}
    os.makedirs(args["output_dir"], exist_ok=True)
    with open(os.path.join(args["output_dir"], "eval_info.json"), "w") as f:
        json.dump(out, f)
    '''
)


@pytest.fixture
def fake_eval(tmp_path, monkeypatch):
    """``--lerobot_eval`` value of a fast stand-in evaluator, and the path of its call log."""
    script = tmp_path / "fake_lerobot_eval.py"
    script.write_text(FAKE_EVAL)
    log = tmp_path / "fake_eval_calls.jsonl"
    log.touch()
    monkeypatch.setenv("FAKE_EVAL_LOG", str(log))
    return f"{sys.executable} {script}", log


def policy_config(
    path: Path, policy_type: str, inputs: dict[str, tuple[str, tuple]], action_dim: int, **fields
) -> Path:
    """A checkpoint directory holding only config.json (what the planning and feature checks read)."""
    path.mkdir(parents=True, exist_ok=True)
    cfg = {
        "type": policy_type,
        "input_features": {k: {"type": t, "shape": list(s)} for k, (t, s) in inputs.items()},
        "output_features": {"action": {"type": "ACTION", "shape": [action_dim]}},
        **fields,
    }
    (path / "config.json").write_text(json.dumps(cfg))
    return path


@pytest.fixture
def make_policy_config():
    return policy_config


METAWORLD_INPUTS = {"observation.image": ("VISUAL", (3, 480, 480)), "observation.state": ("STATE", (4,))}


@pytest.fixture
def metaworld_act_checkpoint(tmp_path):
    return policy_config(tmp_path / "act_mw" / "pretrained_model", "act", METAWORLD_INPUTS, 4, chunk_size=100)


@pytest.fixture(scope="session")
def tiny_evo1(tmp_path_factory, tiny_internvl):
    """Untrained tiny evo1 checkpoints with the LIBERO, RoboTwin and CALVIN features (built once)."""
    from lerobot_vla_tools.testing.evo1 import build_tiny_evo1_checkpoint

    root = tmp_path_factory.mktemp("tiny_evo1")
    specs = {
        "libero": ({"observation.images.image": (3, 64, 64), "observation.images.image2": (3, 64, 64)}, 8, 7),
        "robotwin": (
            {
                f"observation.images.{c}": (3, 240, 320)
                for c in ("head_camera", "left_camera", "right_camera")
            },
            14,
            14,
        ),
        "calvin": (
            {"observation.images.rgb_static": (3, 200, 200), "observation.images.rgb_gripper": (3, 84, 84)},
            15,
            7,
        ),
    }
    return {
        name: build_tiny_evo1_checkpoint(root / name / "pretrained_model", tiny_internvl, cams, state, action)
        for name, (cams, state, action) in specs.items()
    }
