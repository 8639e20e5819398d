"""CALVIN as a Gymnasium env that ``lerobot-eval`` drives: one episode = one chain of 5 subtasks.

How a chain runs (the official ``evaluate_sequence`` / ``rollout`` of CALVIN, turned into one episode):

* ``reset()`` takes this sub-env's next chain, resets the simulator to the chain's start scene and sets
  ``task_description`` to the first subtask's instruction (LeRobot's eval loop reads it at every step, so the
  policy always gets the instruction of the subtask in progress).
* each ``step()`` applies a 7-D action and asks the simulator's task oracle whether the *current* subtask is done
  (comparing with the simulator state when that subtask started). Done: reward 1, the next subtask starts (new
  instruction, new start state, a fresh budget of ``subtask_max_steps``). Not done within its budget: the episode
  ends (truncated) and the chain's completed length is the number of subtasks done so far: a subtask only counts
  when all before it succeeded, whatever else the oracle sees.
* the 5th subtask done: ``terminated`` with ``is_success`` True.

So in LeRobot's ``eval_info.json`` an episode's ``sum_reward`` is the chain's completed length (0..5) and
``success`` means all five. ``lerobot-vla-bench --protocol=calvin`` turns these into the papers' table.

Difference from the official loop, inherent to running through ``lerobot-eval``: the official evaluation calls
``model.reset()`` at each subtask; here the policy is reset once per chain, so actions the policy queued for the
previous instruction (at most ``n_action_steps - 1``) run first. Only the static and gripper RGB cameras are
rendered (no depth or tactile images): the policy sees nothing else.

The simulator is reached only through :class:`CalvinRuntime` (built by :func:`_load_calvin_runtime`): tests
replace that function, the way LeRobot's own tests replace RoboTwin's task loader.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .benchmark import CHAIN_LENGTH, INSTRUCTIONS, ORACLE, get_chains, initial_scene

#: CALVIN camera names as the simulator reports them (``rgb_obs`` keys) and their default sizes.
STATIC_CAMERA = "rgb_static"
GRIPPER_CAMERA = "rgb_gripper"
#: robot_obs: tcp position (3), tcp orientation as euler angles (3), gripper opening width (1), arm joint
#: positions (7), last gripper action (1).
STATE_DIM = 15
#: ``observation.state`` layouts: the whole robot_obs, or the 7-D state Seer and VITA-VLA read (their CALVIN code:
#: ``cat(robot_obs[:6], robot_obs[[-1]])`` = tcp position, tcp euler angles, last gripper action -1/+1).
STATE_LAYOUTS = {"robot_obs": list(range(STATE_DIM)), "seer": [0, 1, 2, 3, 4, 5, STATE_DIM - 1]}
ACTION_DIM = 7
ACTION_MODES = ("relative", "absolute")

INSTALL_HINT = (
    "CALVIN is not installed in this environment. Install the simulator (calvin_env, PyBullet) and download the "
    "data whose validation/ folder defines the evaluation scene:\n"
    "  git clone --recurse-submodules https://github.com/mees/calvin.git\n"
    "  pip install -e calvin/calvin_env/tacto -e calvin/calvin_env\n"
    "  cd calvin/dataset && sh download_data.sh ABC   # -> calvin/dataset/task_ABC_D\n"
    "then pass --env.dataset_path=<...>/task_ABC_D (see docs/calvin.md)."
)


class CalvinRuntime(Protocol):
    """The part of an installed CALVIN the env talks to (the simulator boundary).

    Observations are CALVIN's dicts: ``{"rgb_obs": {"rgb_static": (H, W, 3) uint8, "rgb_gripper": ...},
    "robot_obs": (15,), "scene_obs": (24,)}``; ``info`` is what ``PlayTableSimEnv.get_info()`` returns.
    """

    def reset(self, robot_obs: np.ndarray, scene_obs: np.ndarray) -> dict: ...

    def step(self, action: Any) -> tuple[dict, dict]: ...

    def get_info(self) -> dict: ...

    def subtask_done(self, start_info: dict, info: dict, subtask: str) -> bool: ...

    def close(self) -> None: ...


class _InstalledCalvin:
    """:class:`CalvinRuntime` over ``calvin_env``: the PyBullet play-table env configured by the dataset's
    ``validation/.hydra/merged_config.yaml`` (scene D for ABC->D) and the official task oracle
    (``calvin_env.envs.tasks.Tasks`` with the official task definitions, :data:`ORACLE`)."""

    def __init__(self, dataset_path: Path):
        from calvin_env.envs.play_table_env import get_env
        from calvin_env.envs.tasks import Tasks

        # Only the two RGB cameras the policy sees are rendered (no depth, no tactile sensor).
        obs_space = {"rgb_obs": [STATIC_CAMERA, GRIPPER_CAMERA], "depth_obs": []}
        self._env = get_env(dataset_path / "validation", obs_space=obs_space, show_gui=False)
        self._oracle = Tasks(ORACLE)

    def reset(self, robot_obs, scene_obs):
        return self._env.reset(robot_obs=robot_obs, scene_obs=scene_obs)

    def step(self, action):
        obs, _, _, info = self._env.step(action)
        return obs, info

    def get_info(self):
        return self._env.get_info()

    def subtask_done(self, start_info, info, subtask):
        return len(self._oracle.get_task_info_for_set(start_info, info, {subtask})) > 0

    def close(self):
        self._env.close()


def resolve_dataset_path(dataset_path: str | None, split: str) -> Path:
    """The CALVIN dataset split directory (``.../task_ABC_D``), from the argument or ``$CALVIN_DATASET``.

    Raises:
        ValueError: nothing given, the folder or its ``validation/`` is missing, or it is another split.
    """
    raw = dataset_path or os.environ.get("CALVIN_DATASET")
    if not raw:
        raise ValueError(
            f"calvin: --env.dataset_path is required (the CALVIN split folder, e.g. .../calvin/dataset/task_{split}; "
            "or set $CALVIN_DATASET)"
        )
    path = Path(raw).expanduser()
    if not (path / "validation").is_dir():
        raise ValueError(
            f"calvin: dataset_path {str(path)!r} has no validation/ folder; point it at the split folder "
            f"(.../task_{split}) downloaded with calvin/dataset/download_data.sh"
        )
    if path.name.startswith("task_") and path.name != f"task_{split}":
        raise ValueError(
            f"calvin: dataset_path is {path.name!r} but --env.task={split!r}; pass --env.task={path.name[5:]}"
        )
    return path


def _load_calvin_runtime(dataset_path: Path) -> CalvinRuntime:
    """Build the runtime over the installed ``calvin_env`` (imported here, lazily, so that the plugin registers
    ``--env.type=calvin`` without CALVIN installed and says how to install it when it is used)."""
    try:
        importlib.import_module("calvin_env.envs.play_table_env")
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT}\n(import error: {err})") from err
    return _InstalledCalvin(dataset_path)


class CalvinEnv(gym.Env):
    """One sub-env of the CALVIN long-horizon evaluation (chains ``first_chain``, ``first_chain + stride``, ...).

    Observation: ``{"pixels": {"rgb_static": (S, S, 3), "rgb_gripper": (G, G, 3)} uint8, "agent_pos": (15,)}``
    (``state_layout="seer"``: ``agent_pos`` (7,) = robot_obs[:6] + robot_obs[-1], the released Seer / VITA-VLA input)
    (LeRobot turns these into ``observation.images.rgb_static``, ``observation.images.rgb_gripper``,
    ``observation.state``). Action: (7,) float, ``relative``: tcp position and euler deltas in [-1, 1] (CALVIN's
    ``rel_actions`` scale) and gripper; ``absolute``: tcp position, euler angles and gripper. The gripper is sent
    as +1 (open) if the action is > 0, else -1 (close), as CALVIN's evaluation wrapper does.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        runtime_factory: Callable[[], CalvinRuntime],
        chains: Sequence[tuple[dict, tuple[str, ...]]],
        first_chain: int = 0,
        stride: int = 1,
        action_mode: str = "relative",
        subtask_max_steps: int = 360,
        static_size: int = 200,
        gripper_size: int = 84,
        state_layout: str = "robot_obs",
    ):
        super().__init__()
        if state_layout not in STATE_LAYOUTS:
            raise ValueError(
                f"calvin: state_layout must be one of {tuple(STATE_LAYOUTS)}, got {state_layout!r}"
            )
        self.state_index = STATE_LAYOUTS[state_layout]
        if action_mode not in ACTION_MODES:
            raise ValueError(f"calvin: action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if subtask_max_steps < 1:
            raise ValueError(f"calvin: subtask_max_steps must be >= 1, got {subtask_max_steps}")
        self._runtime_factory = runtime_factory
        self._runtime: CalvinRuntime | None = None  # built on first reset, inside the worker process
        self.chains = list(chains)
        self.next_chain = first_chain
        self.stride = stride
        self.action_mode = action_mode
        self.subtask_max_steps = subtask_max_steps
        self.static_size = static_size
        self.gripper_size = gripper_size
        # lerobot_eval.rollout reads these three.
        self._max_episode_steps = CHAIN_LENGTH * subtask_max_steps
        self.task = ""
        self.task_description = ""

        self.chain_id = -1
        self.subtasks: tuple[str, ...] = ()
        self.completed = 0
        self._subtask_steps = 0
        self._start_info: dict | None = None
        self._last_obs: dict | None = None

        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict(
                    {
                        STATIC_CAMERA: spaces.Box(0, 255, (static_size, static_size, 3), np.uint8),
                        GRIPPER_CAMERA: spaces.Box(0, 255, (gripper_size, gripper_size, 3), np.uint8),
                    }
                ),
                "agent_pos": spaces.Box(-np.inf, np.inf, (len(self.state_index),), np.float64),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    # -- observations ----------------------------------------------------------------------------------------
    def _format(self, obs: dict) -> dict:
        rgb = obs["rgb_obs"]
        pixels = {}
        for cam, size in ((STATIC_CAMERA, self.static_size), (GRIPPER_CAMERA, self.gripper_size)):
            if cam not in rgb:
                raise KeyError(
                    f"calvin: the simulator renders no {cam!r} camera (it has {sorted(rgb)}); the dataset's "
                    "validation/.hydra/merged_config.yaml must enable the static and gripper cameras"
                )
            img = np.asarray(rgb[cam], dtype=np.uint8)
            if img.shape != (size, size, 3):
                field = "static_size" if cam == STATIC_CAMERA else "gripper_size"
                raise ValueError(
                    f"calvin: {cam} frames are {img.shape}, expected ({size}, {size}, 3); set --env.{field}"
                )
            pixels[cam] = img
        state = np.asarray(obs["robot_obs"], dtype=np.float64)
        if state.shape != (STATE_DIM,):
            raise ValueError(
                f"calvin: robot_obs has shape {state.shape}, expected ({STATE_DIM},) (euler orientation)"
            )
        return {"pixels": pixels, "agent_pos": state[self.state_index]}

    def _start_subtask(self) -> None:
        subtask = self.subtasks[self.completed]
        self.task = subtask
        self.task_description = INSTRUCTIONS[subtask]
        self._subtask_steps = 0
        self._start_info = self._runtime.get_info()

    def _info(self) -> dict:
        return {
            "is_success": self.completed == CHAIN_LENGTH,
            "chain_id": self.chain_id,
            "completed_subtasks": self.completed,
            "subtask": self.task,
        }

    # -- gym API ----------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start this sub-env's next chain. ``seed`` is accepted for the Gym API; CALVIN scenes are fixed by the
        chain's initial condition, not by a seed."""
        super().reset(seed=seed)
        if self._runtime is None:
            self._runtime = self._runtime_factory()
        if self.next_chain >= len(self.chains):
            raise ValueError(
                f"calvin: chain {self.next_chain} requested but only {len(self.chains)} chains exist "
                "; lower --eval.n_episodes or --env.first_chain"
            )
        self.chain_id = self.next_chain
        self.next_chain += self.stride
        condition, self.subtasks = self.chains[self.chain_id]
        robot_obs, scene_obs = initial_scene(condition)
        self._last_obs = self._runtime.reset(robot_obs, scene_obs)
        self.completed = 0
        self._start_subtask()
        return self._format(self._last_obs), self._info()

    def _to_simulator(self, action: np.ndarray):
        gripper = 1 if action[6] > 0 else -1
        if self.action_mode == "relative":
            # A 7-vector is CALVIN's relative (cartesian_rel) action.
            return np.concatenate([action[:6].astype(np.float64), [gripper]])
        # A (position, euler, gripper) tuple is CALVIN's absolute action.
        return (action[:3].astype(np.float64), action[3:6].astype(np.float64), gripper)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self._runtime is None or self._start_info is None:
            raise RuntimeError("calvin: step() called before reset()")
        action = np.asarray(action)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"calvin: expected a 1-D action of shape ({ACTION_DIM},), got {action.shape}")
        if self.completed == CHAIN_LENGTH or self._subtask_steps >= self.subtask_max_steps:
            raise RuntimeError("calvin: step() after the chain ended; call reset()")
        self._last_obs, info = self._runtime.step(self._to_simulator(action))
        self._subtask_steps += 1

        reward = 0.0
        terminated = truncated = False
        # Only the subtask in progress is checked: later ones never count before it is done.
        if self._runtime.subtask_done(self._start_info, info, self.subtasks[self.completed]):
            reward = 1.0
            self.completed += 1
            if self.completed == CHAIN_LENGTH:
                terminated = True
            else:
                self._start_subtask()
        elif self._subtask_steps >= self.subtask_max_steps:
            truncated = True
        return self._format(self._last_obs), reward, terminated, truncated, self._info()

    def render(self) -> np.ndarray:
        if self._last_obs is None:
            return np.zeros((self.static_size, self.static_size, 3), dtype=np.uint8)
        return self._format(self._last_obs)["pixels"][STATIC_CAMERA]

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


def create_calvin_envs(
    n_envs: int,
    dataset_path: str | None,
    split: str = "ABC_D",
    first_chain: int = 0,
    action_mode: str = "relative",
    subtask_max_steps: int = 360,
    static_size: int = 200,
    gripper_size: int = 84,
    state_layout: str = "robot_obs",
    use_async_envs: bool = False,
) -> dict[str, dict[int, Any]]:
    """``{"calvin_<split>": {0: VectorEnv}}`` with ``n_envs`` sub-envs; sub-env ``j`` runs chains
    ``first_chain + j``, ``first_chain + j + n_envs``, ... so episode ``e`` of ``lerobot-eval`` is chain
    ``first_chain + e``. Sub-envs freeze once their chain ends (LeRobot's ``FreezeAfterEpisodeEnd``), so an
    autoreset never consumes a chain."""
    from lerobot.envs.utils import _LazyAsyncVectorEnv, freeze_after_episode_end

    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"calvin: n_envs must be a positive int, got {n_envs}")
    chains = get_chains()
    if not 0 <= first_chain < len(chains):
        raise ValueError(f"calvin: first_chain must be in [0, {len(chains)}), got {first_chain}")
    path = resolve_dataset_path(dataset_path, split)

    def make(j: int) -> Callable[[], CalvinEnv]:
        def _env() -> CalvinEnv:
            return CalvinEnv(
                runtime_factory=lambda: _load_calvin_runtime(path),
                chains=chains,
                first_chain=first_chain + j,
                stride=n_envs,
                action_mode=action_mode,
                subtask_max_steps=subtask_max_steps,
                static_size=static_size,
                gripper_size=gripper_size,
                state_layout=state_layout,
            )

        return _env

    fns = [make(j) for j in range(n_envs)]
    if use_async_envs and n_envs > 1:
        vec = _LazyAsyncVectorEnv(fns)
    else:
        vec = gym.vector.SyncVectorEnv(
            [freeze_after_episode_end(fn) for fn in fns], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
        )
    return {f"calvin_{split}": {0: vec}}
