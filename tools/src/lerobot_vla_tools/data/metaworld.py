"""Local Meta-World demonstrations as a LeRobot v3.0 dataset, recorded with Meta-World's scripted experts.

This is how the Evo-1 paper built its Meta-World set (supplement section 2.1: scripted experts, 50
demonstrations per task, randomised object and goal placement, the 50 tasks of Table 3), done on the
user's machine because model and data downloads are not assumed.

What a frame holds is exactly what ``lerobot-eval --env.type=metaworld`` feeds a policy, because it is
produced by the same code: LeRobot's ``MetaworldEnv`` (camera ``corner2`` moved and flipped on both
axes, 480x480 RGB) and its observation formatter.

==========================  ==========================  =======================================
dataset key                 env observation             after ``preprocess_observation``
==========================  ==========================  =======================================
``observation.image``       ``pixels`` (480, 480, 3) u8  (3, 480, 480) float32 in [0, 1]
``observation.state``       ``agent_pos`` (4,) float64   (4,) float32: hand xyz + gripper opening
``action``                  (4,) in [-1, 1]              the expert's action, clipped as the env does
``task``                    ``task_description``         LeRobot's prompt for the task
==========================  ==========================  =======================================

Frames are recorded at 80 fps (LeRobot's ``fps`` for Meta-World) until the step on which the task
succeeds, the point where ``lerobot-eval`` ends an episode. Only successful expert episodes are kept; a
seed whose expert fails is skipped (the report gives the expert's success rate). Each episode is first
rolled out without rendering (about 1 ms a step) to learn whether the expert succeeds, then replayed
with rendering only if it does: MuJoCo is deterministic, so the replay is the same episode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lerobot_vla_plugins.atomic import atomic_directory

# The recorded layout is the light library's (converters need it too); re-exported here for the builder's users.
from lerobot_vla_plugins.features import (  # noqa: F401
    ACTION_KEY,
    ACTION_NAMES,
    IMAGE_KEY,
    IMAGE_SHAPE,
    STATE_KEY,
    STATE_NAMES,
    metaworld_features,
)

from .metaworld_tasks import TASK_DIFFICULTY, resolve_tasks
from .quantiles import exact_quantile_stats

logger = logging.getLogger(__name__)

FPS = 80  # LeRobot's MetaworldEnv fps (metadata["render_fps"])
MAX_EPISODE_STEPS = 500  # MetaworldEnv._max_episode_steps


@dataclass
class MetaWorldBuildConfig:
    """What to record. Field names double as the command-line flags (``--episodes_per_task=...``)."""

    # Tasks: comma-separated Meta-World names (``button-press-topdown-v3``, ``reach``) or groups
    # (``easy``, ``medium``, ``hard``, ``very_hard``, ``all``; Evo-1 supplement Table 3).
    tasks: str = "button-press-topdown-v3"
    # Successful demonstrations to keep per task (the paper used 50).
    episodes_per_task: int = 50
    # Episode k of a task is tried with env seed ``seed + k``; failed expert runs move on to the next seed.
    seed: int = 0
    # Output directory (must not exist unless ``overwrite``). Default: ``$HF_LEROBOT_HOME/<repo_id>``.
    root: str | None = None
    repo_id: str = "local/metaworld"
    # Store frames as MP4 video (LeRobot's default: 20x smaller and, because LeRobot decodes the image of
    # every row of an action-chunk query for image features, about 3x faster to load for training).
    # false stores lossless PNG images: bit-exact frames, slower to load.
    use_videos: bool = True
    # Replace an existing ``root`` once the new dataset is complete.
    overwrite: bool = False
    # Parallel rollout processes (rendering is the bottleneck: about 0.1 s per frame on one CPU core).
    num_workers: int = 1
    # Give up on a task after this many failed expert runs beyond the episodes asked for.
    max_failed_attempts: int = 50
    # Show a progress bar.
    progress: bool = True


@dataclass
class TaskReport:
    task: str
    difficulty: str
    prompt: str
    episodes: int
    attempts: int
    seeds: list[int] = field(default_factory=list)
    frames: int = 0

    @property
    def expert_success_rate(self) -> float:
        return self.episodes / self.attempts if self.attempts else 0.0


@dataclass
class BuildReport:
    root: Path
    repo_id: str
    tasks: list[TaskReport]

    @property
    def episodes(self) -> int:
        return sum(t.episodes for t in self.tasks)

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.tasks)

    @property
    def expert_success_rate(self) -> float:
        attempts = sum(t.attempts for t in self.tasks)
        return self.episodes / attempts if attempts else 0.0

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "repo_id": self.repo_id,
            "episodes": self.episodes,
            "frames": self.frames,
            "expert_success_rate": self.expert_success_rate,
            "tasks": [{**asdict(t), "expert_success_rate": t.expert_success_rate} for t in self.tasks],
        }

    def table(self) -> str:
        lines = [
            "| task | difficulty | episodes | expert success | frames |",
            "|---|---|---|---|---|",
        ]
        for t in self.tasks:
            lines.append(
                f"| {t.task} | {t.difficulty} | {t.episodes} | {t.episodes}/{t.attempts} "
                f"({100 * t.expert_success_rate:.0f}%) | {t.frames} |"
            )
        lines.append(
            f"| **all** | | {self.episodes} | {100 * self.expert_success_rate:.0f}% | {self.frames} |"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Rollouts (run in worker processes; one LeRobot MetaworldEnv per task and process)
# ----------------------------------------------------------------------------------------------

_ENVS: dict = {}


def _env(task: str):
    if task not in _ENVS:
        from lerobot.envs.metaworld import MetaworldEnv

        _ENVS[task] = MetaworldEnv(task=task, obs_type="pixels_agent_pos")
    return _ENVS[task]


def _make_render_context_current(env) -> None:
    """Make this env's EGL context current before it renders.

    Gymnasium's MuJoCo renderer makes its context current only when it was created or when it has
    more than one viewer, so after another env in the process created or freed a context (for
    example a ``lerobot-eval`` env made and closed between two builds), this env would render into
    nothing and record black frames.
    """
    viewer = getattr(getattr(env._env, "mujoco_renderer", None), "viewer", None)
    if viewer is not None:
        viewer.make_context_current()


def _close_envs() -> None:
    """Close and forget this process's cached envs (frees their rendering contexts)."""
    while _ENVS:
        _, env = _ENVS.popitem()
        with contextlib.suppress(Exception):
            env.close()


def _expert_episode(task: str, seed: int, render: bool) -> dict:
    """Roll out the scripted expert from ``reset(seed)``.

    Returns a dict with ``success`` and, when ``render``, the frames: ``image`` (T, 480, 480, 3) uint8,
    ``state`` (T, 4) float32, ``action`` (T, 4) float32. Frame t is the observation the policy would see
    at step t and the action taken from it.
    """
    env = _env(task)
    if render:
        _make_render_context_current(env)
    obs, _ = env.reset(seed=seed)
    if render and not obs["pixels"].any():
        raise RuntimeError(
            f"MuJoCo rendered an all-black frame for {task} (seed {seed}): the OpenGL context is not usable. "
            "Run with MUJOCO_GL=egl (headless) or MUJOCO_GL=glfw (with a display)."
        )
    # The expert reads the raw 39-D observation; the policy sees the formatted one. Stepping the inner
    # env (as MetaworldEnv.step does) avoids the auto-reset MetaworldEnv.step performs on success.
    raw = env._env._get_obs()
    images, states, actions = [], [], []
    low, high = env.action_space.low, env.action_space.high
    for _ in range(MAX_EPISODE_STEPS):
        action = np.clip(env.expert_policy.get_action(raw), low, high).astype(np.float32)
        if render:
            images.append(obs["pixels"])
            states.append(np.asarray(obs["agent_pos"], dtype=np.float32))
        actions.append(action)
        raw, _reward, _done, truncated, info = env._env.step(action)
        if info.get("success"):
            out = {"success": True, "length": len(actions)}
            if render:
                out.update(image=np.stack(images), state=np.stack(states), action=np.stack(actions))
            return out
        if truncated:
            break
        if render:
            obs = env._format_raw_obs(raw)
    return {"success": False, "length": len(actions)}


def _job(args: tuple[str, int]) -> tuple[str, int, dict]:
    """Worker entry: screen the seed without rendering, then record it if the expert succeeds."""
    task, seed = args
    screened = _expert_episode(task, seed, render=False)
    if not screened["success"]:
        return task, seed, screened
    return task, seed, _expert_episode(task, seed, render=True)


def _worker_init() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import warnings

    warnings.filterwarnings("ignore", message=".*Constant\\(s\\) may be too high.*")


class _Rollouts:
    """Runs expert jobs in order, in this process or in a pool of ``num_workers`` spawned processes."""

    def __init__(self, num_workers: int):
        self.num_workers = num_workers
        self.pool = None

    def __enter__(self) -> _Rollouts:
        if self.num_workers > 1:
            import multiprocessing as mp

            # spawn: each worker creates its own EGL context (a forked one would inherit the parent's).
            self.pool = ProcessPoolExecutor(
                max_workers=self.num_workers, mp_context=mp.get_context("spawn"), initializer=_worker_init
            )
        else:
            _worker_init()
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            _close_envs()

    def map(self, jobs: list[tuple[str, int]]) -> Iterator[tuple[str, int, dict]]:
        if self.pool is None:
            return map(_job, jobs)
        return self.pool.map(_job, jobs)


# ----------------------------------------------------------------------------------------------
# Builder
# ----------------------------------------------------------------------------------------------


def _validate(cfg: MetaWorldBuildConfig) -> list[str]:
    if cfg.episodes_per_task < 1:
        raise ValueError(
            f"episodes_per_task must be at least 1 (got {cfg.episodes_per_task}); pass --episodes_per_task=N"
        )
    if cfg.num_workers < 1:
        raise ValueError(f"num_workers must be at least 1 (got {cfg.num_workers})")
    if cfg.max_failed_attempts < 0:
        raise ValueError(f"max_failed_attempts must be >= 0 (got {cfg.max_failed_attempts})")
    if not cfg.repo_id or "/" not in cfg.repo_id:
        raise ValueError(
            f"repo_id must look like 'user/name' (got {cfg.repo_id!r}); pass --repo_id=local/metaworld"
        )
    return resolve_tasks(cfg.tasks)


def default_root(repo_id: str) -> Path:
    from lerobot.utils.constants import HF_LEROBOT_HOME

    return Path(HF_LEROBOT_HOME) / repo_id


def build_metaworld_dataset(cfg: MetaWorldBuildConfig) -> BuildReport:
    """Record scripted-expert demonstrations into a new LeRobot v3.0 dataset at ``cfg.root``.

    The dataset is written to a temporary directory and moved into place only when complete, so an
    error or interruption leaves nothing at ``cfg.root``.

    Raises:
        ValueError: unknown task or group, fewer than one episode, a malformed repo id.
        FileExistsError: ``cfg.root`` exists and ``cfg.overwrite`` is False.
        RuntimeError: a task's expert failed more than ``cfg.max_failed_attempts`` times.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tqdm import tqdm

    tasks = _validate(cfg)
    root = Path(cfg.root).expanduser() if cfg.root else default_root(cfg.repo_id)
    reports = {
        t: TaskReport(task=t, difficulty=TASK_DIFFICULTY[t], prompt=_env_prompt(t), episodes=0, attempts=0)
        for t in tasks
    }

    with atomic_directory(root, overwrite=cfg.overwrite) as tmp:
        dataset = LeRobotDataset.create(
            repo_id=cfg.repo_id,
            fps=FPS,
            features=metaworld_features(cfg.use_videos),
            root=tmp,
            robot_type="sawyer",
            use_videos=cfg.use_videos,
            image_writer_threads=4 if not cfg.use_videos else 0,
        )
        total = len(tasks) * cfg.episodes_per_task
        bar = tqdm(total=total, desc="Meta-World demos", unit="ep", disable=not cfg.progress)
        try:
            with _Rollouts(cfg.num_workers) as rollouts:
                for task in tasks:
                    _record_task(dataset, rollouts, reports[task], cfg, bar)
            dataset.finalize()
            exact_quantile_stats(tmp)  # LeRobot's per-episode estimate collapses on multi-task data
        except BaseException:
            # Close every writer now, while the temporary directory still exists: otherwise LeRobot's
            # DatasetWriter.__del__ safety net finalizes later and recreates files after the cleanup.
            with contextlib.suppress(Exception):
                dataset.finalize()
            raise
        finally:
            bar.close()
        report = BuildReport(root=root, repo_id=cfg.repo_id, tasks=list(reports.values()))
        (tmp / "meta" / "build_report.json").write_text(
            json.dumps({**report.to_dict(), "config": asdict(cfg)}, indent=2)
        )
    return report


def _record_task(dataset, rollouts: _Rollouts, rep: TaskReport, cfg: MetaWorldBuildConfig, bar) -> None:
    """Record ``cfg.episodes_per_task`` successful expert episodes of ``rep.task`` (seeds in order)."""
    next_seed = cfg.seed
    while rep.episodes < cfg.episodes_per_task:
        failures = rep.attempts - rep.episodes
        if failures > cfg.max_failed_attempts:
            raise RuntimeError(
                f"{rep.task}: the scripted expert failed {failures} times for seeds {cfg.seed}..{next_seed - 1} "
                f"({rep.episodes}/{cfg.episodes_per_task} episodes recorded); "
                "raise --max_failed_attempts or ask for fewer episodes"
            )
        needed = cfg.episodes_per_task - rep.episodes
        jobs = [(rep.task, s) for s in range(next_seed, next_seed + needed)]
        next_seed += needed
        for _task, seed, ep in rollouts.map(jobs):
            rep.attempts += 1
            if not ep["success"]:
                logger.info("%s seed %d: expert failed after %d steps; skipped", rep.task, seed, ep["length"])
                continue
            for i in range(ep["length"]):
                dataset.add_frame(
                    {
                        IMAGE_KEY: ep["image"][i],
                        STATE_KEY: ep["state"][i],
                        ACTION_KEY: ep["action"][i],
                        "task": rep.prompt,
                    }
                )
            dataset.save_episode()
            rep.episodes += 1
            rep.frames += ep["length"]
            rep.seeds.append(seed)
            bar.update(1)
            bar.set_postfix(task=rep.task, expert_success=f"{rep.episodes}/{rep.attempts}")


def _env_prompt(task: str) -> str:
    """The prompt ``lerobot-eval`` gives the policy for ``task`` (``MetaworldEnv.task_description``)."""
    from lerobot.envs.metaworld import TASK_DESCRIPTIONS

    return TASK_DESCRIPTIONS[task]
