"""Run one step of a trained checkpoint through exactly the objects ``lerobot-eval --env.type=metaworld`` builds
(``make_policy`` with the env config, ``make_pre_post_processors`` with eval's overrides, the env processors,
``preprocess_observation`` on a real ``MetaworldEnv`` observation), without the minutes a full episode costs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .fixtures import TEST_TASK

if TYPE_CHECKING:
    import torch


def metaworld_eval_actions(
    checkpoint: str | Path, steps: int = 2, task: str = TEST_TASK, device: str = "cpu"
) -> list[torch.Tensor]:
    """Load ``checkpoint`` as lerobot-eval does and return the postprocessed actions of ``steps`` env steps.

    Returns:
        list of (1, A) action tensors, as sent to the env.
    """
    import numpy as np
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.envs.factory import make_env_config, make_env_pre_post_processors
    from lerobot.envs.metaworld import MetaworldEnv
    from lerobot.envs.utils import preprocess_observation
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot.utils.constants import ACTION
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()  # as lerobot-eval's main() does
    env_cfg = make_env_config("metaworld", task=task)
    policy_cfg = PreTrainedConfig.from_pretrained(str(checkpoint))
    policy_cfg.pretrained_path = Path(checkpoint)
    policy_cfg.device = device
    policy = make_policy(cfg=policy_cfg, env_cfg=env_cfg)
    policy.eval()
    pre, post = make_pre_post_processors(
        policy_cfg=policy_cfg,
        pretrained_path=str(checkpoint),
        preprocessor_overrides={
            "device_processor": {"device": device},
            "rename_observations_processor": {"rename_map": {}},
        },
    )
    env_pre, env_post = make_env_pre_post_processors(env_cfg=env_cfg, policy_cfg=policy_cfg)
    env = MetaworldEnv(task=task, obs_type="pixels_agent_pos")
    try:
        raw, _ = env.reset(seed=0)
        policy.reset()
        actions = []
        for _ in range(steps):
            obs = preprocess_observation({k: np.asarray(v)[None] for k, v in raw.items()})
            obs["task"] = [env.task_description]
            obs = pre(env_pre(obs))
            with torch.inference_mode():
                action = post(policy.select_action(obs))
            action = env_post({ACTION: action})[ACTION]
            actions.append(action)
            raw, *_ = env.step(action[0].numpy())
        return actions
    finally:
        env.close()
