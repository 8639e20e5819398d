"""A scripted stand-in for the CALVIN simulator, used by tests in place of ``calvin_env``.

It implements :class:`lerobot_env_calvin.calvin.CalvinRuntime`: each subtask is "done" a scripted number of steps
after it started (or never), so a test knows every chain's completed length in advance:
:func:`expected_length` computes it from the chain alone. The default script: lifting a block never succeeds,
every other subtask takes 2 steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .benchmark import CHAIN_LENGTH


def default_script(subtask: str) -> int | None:
    """Steps a subtask takes in the scripted simulator (None: never done)."""
    return None if subtask.startswith("lift_") else 2


def expected_length(
    chain: tuple[str, ...], max_steps: int, script: Callable[[str], int | None] = default_script
) -> int:
    """Completed length of a chain under ``script``: subtasks count in order until the first one that is not done
    within ``max_steps``."""
    n = 0
    for subtask in chain:
        steps = script(subtask)
        if steps is None or steps > max_steps:
            break
        n += 1
    return min(n, CHAIN_LENGTH)


class ScriptedCalvin:
    """Records resets, actions and oracle queries; reports a subtask done ``script(subtask)`` steps after the
    info the env passes as the subtask's start."""

    def __init__(
        self,
        script: Callable[[str], int | None] = default_script,
        static_size: int = 200,
        gripper_size: int = 84,
    ):
        self.script = script
        self.static_size = static_size
        self.gripper_size = gripper_size
        self.t = 0
        self.resets: list[tuple[np.ndarray, np.ndarray]] = []
        self.actions: list = []
        self.queries: list[str] = []
        self.closed = False

    def _obs(self) -> dict:
        shade = self.t % 256
        return {
            "rgb_obs": {
                "rgb_static": np.full((self.static_size, self.static_size, 3), shade, dtype=np.uint8),
                "rgb_gripper": np.full((self.gripper_size, self.gripper_size, 3), shade, dtype=np.uint8),
            },
            "robot_obs": np.linspace(0.0, 1.0, 15) + 0.01 * self.t,
            "scene_obs": np.zeros(24),
        }

    def reset(self, robot_obs: np.ndarray, scene_obs: np.ndarray) -> dict:
        self.t = 0
        self.resets.append((np.asarray(robot_obs), np.asarray(scene_obs)))
        return self._obs()

    def step(self, action: np.ndarray) -> tuple[dict, dict]:
        self.t += 1
        self.actions.append(action)
        return self._obs(), self.get_info()

    def get_info(self) -> dict:
        return {"t": self.t}

    def subtask_done(self, start_info: dict, info: dict, subtask: str) -> bool:
        self.queries.append(subtask)
        steps = self.script(subtask)
        return steps is not None and info["t"] - start_info["t"] >= steps

    def close(self) -> None:
        self.closed = True
