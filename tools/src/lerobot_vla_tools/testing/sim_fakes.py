"""Simulator runtimes replaced at their boundary, for testing evaluation on benchmarks that cannot run here.

LeRobot's own env code runs unchanged; only what it imports from the simulator package is replaced, the way
LeRobot's tests do it (``tests/envs/test_robotwin.py`` patches ``_load_robotwin_task`` and
``_load_robotwin_setup_kwargs``; ``tests/envs/test_libero_termination.py`` patches ``OffScreenRenderEnv``;
``tests/test_robomme_env.py`` puts a stub package in ``sys.modules``). Outcomes are scripted so a test can compute
the expected table independently:

* LIBERO: an episode of task ``t`` from init state ``i`` succeeds 3 steps after the settle steps iff ``(t + i)``
  is even (:func:`libero_success`).
* RoboTwin: an episode with seed ``s`` succeeds at its 3rd step iff ``s`` is even (easy) / ``s % 4 == 0`` (hard,
  when the randomized scene settings reach ``setup_demo``) (:func:`robotwin_success`).
* CALVIN: see ``lerobot_env_calvin.testing``.

``python -m lerobot_vla_tools.testing.fake_sim_eval --fake=<libero|robotwin|calvin> <lerobot-eval flags>``
installs a fake and runs the real ``lerobot-eval``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

LIBERO_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
LIBERO_SETTLE_STEPS = 10  # LeRobot's LiberoEnv num_steps_wait
LIBERO_SUCCESS_STEP = 3

#: ``setattr`` or a test's ``monkeypatch.setattr``: how the installers patch a module.
SetAttr = Callable[[object, str, object], object]


def libero_success(task_id: int, init_state: int) -> bool:
    return (task_id + init_state) % 2 == 0


def robotwin_success(seed: int, randomized: bool) -> bool:
    return seed % (4 if randomized else 2) == 0


# -- LIBERO ---------------------------------------------------------------------------------------------------
class _FakeLiberoTask:
    def __init__(self, suite: str, i: int):
        self.name = f"{suite}_task{i}"
        self.language = f"do {suite} task {i}"
        self.problem_folder = suite
        self.bddl_file = f"task{i}.bddl"
        self.init_states_file = f"task{i}.pruned_init"


class _FakeSuite:
    def __init__(self, name: str):
        self.tasks = [_FakeLiberoTask(name, i) for i in range(10)]

    def get_task(self, i: int) -> _FakeLiberoTask:
        return self.tasks[i]


class FakeOffScreenRenderEnv:
    """Stands in for ``libero.libero.envs.OffScreenRenderEnv`` (robosuite + MuJoCo)."""

    def __init__(
        self, bddl_file_name: str, camera_heights: int = 256, camera_widths: int = 256, **kwargs: object
    ) -> None:
        self.task_id = int(Path(bddl_file_name).stem.removeprefix("task"))
        self.h, self.w = camera_heights, camera_widths
        self.init_state = -1
        self.t = 0
        controller = types.SimpleNamespace(use_delta=True, ee_ori_mat=np.eye(3))
        self.robots = [types.SimpleNamespace(controller=controller)]
        self.env = self  # LeRobot's render() reads env.env._get_observations()

    def _get_observations(self) -> dict[str, np.ndarray]:
        frame = np.full((self.h, self.w, 3), (40 * self.task_id + self.t) % 256, dtype=np.uint8)
        return {
            "agentview_image": frame,
            "robot0_eye_in_hand_image": frame.copy(),
            "robot0_eef_pos": np.array([0.1, 0.0, 0.9]) + 0.001 * self.t,
            "robot0_eef_quat": np.array([0.0, 0.0, 0.0, 1.0]),
            "robot0_gripper_qpos": np.array([0.02, -0.02]),
            "robot0_gripper_qvel": np.zeros(2),
            "robot0_joint_pos": np.zeros(7),
            "robot0_joint_vel": np.zeros(7),
        }

    def seed(self, seed: int | None) -> None:
        pass

    def reset(self) -> dict[str, np.ndarray]:
        self.t = 0
        return self._get_observations()

    def set_init_state(self, state: np.ndarray) -> dict[str, np.ndarray]:
        self.init_state = int(np.asarray(state)[0])
        self.t = 0
        return self._get_observations()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, dict]:
        self.t += 1
        return self._get_observations(), 0.0, False, {}

    def check_success(self) -> bool:
        return self.t >= LIBERO_SETTLE_STEPS + LIBERO_SUCCESS_STEP and libero_success(
            self.task_id, self.init_state
        )

    def close(self) -> None:
        pass


def install_fake_libero() -> None:
    """Put a stub ``libero`` package in ``sys.modules`` and patch LeRobot's LIBERO module's simulator hooks."""
    libero = types.ModuleType("libero")
    inner = types.ModuleType("libero.libero")
    bench = types.ModuleType("libero.libero.benchmark")
    envs = types.ModuleType("libero.libero.envs")
    bench.get_benchmark_dict = lambda: {name: (lambda name=name: _FakeSuite(name)) for name in LIBERO_SUITES}
    inner.benchmark = bench
    inner.get_libero_path = lambda key: f"/fake-libero/{key}"
    envs.OffScreenRenderEnv = FakeOffScreenRenderEnv
    inner.envs = envs
    libero.libero = inner
    sys.modules.update(
        {
            "libero": libero,
            "libero.libero": inner,
            "libero.libero.benchmark": bench,
            "libero.libero.envs": envs,
        }
    )

    import lerobot.envs.libero as lerobot_libero

    # 50 init states per task; state i carries its index (the fake reads it back in set_init_state).
    lerobot_libero.get_task_init_states = lambda suite, i, **kw: np.arange(50, dtype=np.float64)[
        :, None
    ].repeat(4, 1)


# -- RoboTwin -------------------------------------------------------------------------------------------------
class FakeRoboTwinTask:
    """Stands in for a RoboTwin 2.0 task class (``envs/<task>.py``: SAPIEN + CuRobo)."""

    def __init__(self) -> None:
        self.seed: int | None = None
        self.randomized = False
        self.steps = 0
        self.eval_success = False

    def setup_demo(self, **kwargs: Any) -> None:
        self.setup_kwargs = kwargs
        self.seed = kwargs["seed"]
        self.randomized = bool(kwargs.get("domain_randomization", {}).get("random_background", False))
        self.steps = 0

    def get_obs(self) -> dict[str, Any]:
        frame = np.full((240, 320, 3), self.steps % 256, dtype=np.uint8)
        return {
            "observation": {cam: {"rgb": frame} for cam in ("head_camera", "left_camera", "right_camera")},
            "joint_action": {"vector": np.linspace(-1, 1, 14, dtype=np.float32) * 0.1 * self.steps},
            "endpose": {},
        }

    def take_action(self, action: np.ndarray) -> None:
        self.steps += 1

    def check_success(self) -> bool:
        return self.steps >= 3 and robotwin_success(self.seed, self.randomized)

    def close_env(self, *args: object, **kwargs: object) -> None:
        pass


_CLEAN_SETUP = {
    "domain_randomization": {"random_background": False, "cluttered_table": False, "random_light": False},
    "task_config": "demo_clean",
    "render_freq": 0,
}


def install_fake_robotwin(set_attr: SetAttr = setattr, randomized_config: bool = True) -> None:
    """Patch LeRobot's RoboTwin task loader and config loader (and the randomized plugin's config loader).

    ``set_attr``: ``setattr`` (a process of its own) or a test's ``monkeypatch.setattr`` (undone afterwards).
    ``randomized_config=False`` leaves the randomized plugin's YAML reader alone (a test that gives it a RoboTwin
    ``envs`` package with ``task_config/demo_randomized.yml`` to read).
    """
    import lerobot.envs.robotwin as lerobot_robotwin

    set_attr(lerobot_robotwin, "_load_robotwin_task", lambda name: FakeRoboTwinTask)
    set_attr(
        lerobot_robotwin, "_load_robotwin_setup_kwargs", lambda name: {**_CLEAN_SETUP, "task_name": name}
    )
    if not randomized_config:
        return
    try:
        import lerobot_env_robotwin_randomized.robotwin_randomized as randomized
    except ImportError:
        return
    randomized_settings = {"random_background": True, "cluttered_table": True, "random_light": True}
    set_attr(randomized, "_load_task_config", lambda name: {"domain_randomization": randomized_settings})


def install_fake_calvin(set_attr: SetAttr = setattr) -> None:
    """Replace the CALVIN runtime loader of ``lerobot_env_calvin`` with its scripted simulator."""
    import lerobot_env_calvin.calvin as calvin
    from lerobot_env_calvin.testing import ScriptedCalvin

    set_attr(calvin, "_load_calvin_runtime", lambda dataset_path: ScriptedCalvin())


INSTALLERS = {"libero": install_fake_libero, "robotwin": install_fake_robotwin, "calvin": install_fake_calvin}
