"""``--env.type=calvin``: the CALVIN long-horizon benchmark (Mees et al., RA-L 2022) for ``lerobot-eval``.

Example (ABC->D, the setting of VITA-VLA Table 1 and VLA-Adapter Table 6, first 100 of the 1000 chains)::

    lerobot-eval --policy.path=<ckpt> --env.type=calvin --env.dataset_path=~/calvin/dataset/task_ABC_D \
        --eval.n_episodes=100 --eval.batch_size=1

Each episode is one chain of 5 subtasks (see ``lerobot_env_calvin.calvin``); ``lerobot-vla-bench
--protocol=calvin`` runs all 1000 and writes the success-at-k table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from lerobot_vla_plugins.errors import ConfigError

from .benchmark import NUM_CHAINS, SUBTASK_MAX_STEPS
from .calvin import STATE_LAYOUTS

if TYPE_CHECKING:
    import gymnasium as gym

SPLITS = ("ABC_D", "ABCD_D", "D_D")


@EnvConfig.register_subclass("calvin")
@dataclass
class CalvinEnvConfig(EnvConfig):
    # The CALVIN split: train on the environments before "_", evaluate in the one after it. ABC_D is the
    # zero-shot setting the papers report. Names the results group and must match dataset_path's folder.
    task: str = "ABC_D"
    # The split's dataset folder (e.g. ~/calvin/dataset/task_ABC_D); its validation/ folder configures the
    # simulator (scene D, cameras). Defaults to $CALVIN_DATASET.
    dataset_path: str | None = None
    # The first of the official 1000 chains this run evaluates: episode e of lerobot-eval is chain first_chain + e.
    first_chain: int = 0
    # Steps allowed per subtask (the official EP_LEN); a chain stops at the first subtask not done in time.
    subtask_max_steps: int = SUBTASK_MAX_STEPS
    # "relative": tcp position/euler deltas in [-1, 1] + gripper (CALVIN rel_actions, what the papers train on);
    # "absolute": tcp position, euler angles + gripper (CALVIN actions).
    action_mode: str = "relative"
    # Camera sizes of CALVIN's dataset config (static 200x200, gripper 84x84).
    static_size: int = 200
    gripper_size: int = 84
    # observation.state: "robot_obs" = the simulator's 15-D robot_obs; "seer" = the 7-D state the released Seer and
    # VITA-VLA read (tcp position, tcp euler angles, last gripper action: robot_obs[:6] + robot_obs[-1]).
    state_layout: str = "robot_obs"
    fps: int = 30  # CALVIN's control frequency
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(
        default_factory=lambda: {
            ACTION: ACTION,
            "pixels/rgb_static": f"{OBS_IMAGES}.rgb_static",
            "pixels/rgb_gripper": f"{OBS_IMAGES}.rgb_gripper",
            "agent_pos": OBS_STATE,
        }
    )

    def __post_init__(self):
        if self.task not in SPLITS:
            raise ConfigError(
                f"calvin: --env.task must be one of {SPLITS} (the CALVIN split), got {self.task!r}"
            )
        if self.action_mode not in ("relative", "absolute"):
            raise ConfigError(
                f"calvin: --env.action_mode must be 'relative' or 'absolute', got {self.action_mode!r}"
            )
        if not 0 <= self.first_chain < NUM_CHAINS:
            raise ConfigError(
                f"calvin: --env.first_chain must be in [0, {NUM_CHAINS}) (the chain index), got {self.first_chain}"
            )
        if self.subtask_max_steps < 1:
            raise ConfigError(f"calvin: --env.subtask_max_steps must be >= 1, got {self.subtask_max_steps}")
        if self.state_layout not in STATE_LAYOUTS:
            raise ConfigError(
                f"calvin: --env.state_layout must be one of {tuple(STATE_LAYOUTS)}, got {self.state_layout!r}"
            )
        self.features = {
            ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(7,)),
            "pixels/rgb_static": PolicyFeature(
                type=FeatureType.VISUAL, shape=(self.static_size, self.static_size, 3)
            ),
            "pixels/rgb_gripper": PolicyFeature(
                type=FeatureType.VISUAL, shape=(self.gripper_size, self.gripper_size, 3)
            ),
            "agent_pos": PolicyFeature(
                type=FeatureType.STATE, shape=(len(STATE_LAYOUTS[self.state_layout]),)
            ),
        }

    @property
    def gym_kwargs(self) -> dict:
        return {
            "dataset_path": self.dataset_path,
            "split": self.task,
            "first_chain": self.first_chain,
            "action_mode": self.action_mode,
            "subtask_max_steps": self.subtask_max_steps,
            "static_size": self.static_size,
            "gripper_size": self.gripper_size,
            "state_layout": self.state_layout,
        }

    def create_envs(
        self, n_envs: int, use_async_envs: bool = False
    ) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        from .calvin import create_calvin_envs

        return create_calvin_envs(n_envs=n_envs, use_async_envs=use_async_envs, **self.gym_kwargs)
