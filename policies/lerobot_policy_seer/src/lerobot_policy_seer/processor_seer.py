"""Pre/post-processing of Seer: LeRobot's standard pipeline (rename, batch, device, normalise / unnormalise).

Images stay in [0, 1] (VISUAL: IDENTITY); the model itself crops, resizes and CLIP-normalises them (with
``pil_image_size`` set, the preprocessor resizes them first with PIL, as the released CLIP preprocess) and
tokenises the instruction (its frozen CLIP tokenizer), so nothing policy-specific has to survive a reload.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.processor import PolicyAction, PolicyProcessorPipeline

from .configuration_seer import SeerConfig


def make_seer_pre_post_processors(
    config: SeerConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """Rename -> AddBatch [-> PilResize when ``pil_image_size`` is set] -> Device -> Normalize (state MEAN_STD,
    action MIN_MAX) and Unnormalize -> Device(cpu)."""
    from lerobot_vla_plugins.processors.pil_resize import pre_post_processors_with_pil_resize

    return pre_post_processors_with_pil_resize(config, dataset_stats, config.pil_image_size)
