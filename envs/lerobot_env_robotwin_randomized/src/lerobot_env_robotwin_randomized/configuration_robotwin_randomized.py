"""``--env.type=robotwin_randomized``: LeRobot's RoboTwin 2.0 env in the *hard* setting.

RoboTwin 2.0 evaluates every task in two settings: easy (``task_config/demo_clean.yml``: clean table, fixed
lighting) and hard (``demo_randomized.yml``: random backgrounds and textures, cluttered table, random lighting and
table height). Evo-1 Table 1 reports both. LeRobot 0.6.1's ``robotwin`` env always loads ``demo_clean``; this type
is the same env (same cameras, state, actions, flags) with the randomized scene settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lerobot.envs.configs import EnvConfig, RoboTwinEnvConfig

if TYPE_CHECKING:
    import gymnasium as gym


@EnvConfig.register_subclass("robotwin_randomized")
@dataclass
class RoboTwinRandomizedEnvConfig(RoboTwinEnvConfig):
    def create_envs(
        self, n_envs: int, use_async_envs: bool = True
    ) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        from .robotwin_randomized import create_robotwin_randomized_envs

        if not self.task:
            raise ValueError("robotwin_randomized: --env.task is required (a RoboTwin task name)")
        cams = [c.strip() for c in self.camera_names.split(",") if c.strip()]
        return create_robotwin_randomized_envs(
            task=self.task,
            n_envs=n_envs,
            use_async_envs=use_async_envs,
            camera_names=cams,
            observation_height=self.observation_height,
            observation_width=self.observation_width,
            episode_length=self.episode_length,
            action_mode=self.action_mode,
        )
