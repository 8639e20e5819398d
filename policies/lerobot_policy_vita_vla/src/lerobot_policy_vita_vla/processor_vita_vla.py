"""Pre/post-processing of VITA-VLA: LeRobot's standard pipeline (rename, batch, device, normalise / unnormalise),
with ``pil_image_size`` set a PIL resize of the frames first (the released ``CLIPImageProcessor`` at 200 px).

The model builds its own prompts and image tokens (VITA-1.5's chat template, 200x200 images) and, in stage 1,
the teacher's inputs from the same batch: its state converted to what the teacher's own normaliser expects
(``modeling_vita_vla.teacher_state_renormalizer``).
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.processor import PolicyAction, PolicyProcessorPipeline

from .configuration_vita_vla import VitaVlaConfig


def make_vita_vla_pre_post_processors(
    config: VitaVlaConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """Rename -> AddBatch [-> PilResize when ``pil_image_size`` is set] -> Device -> Normalize (state MEAN_STD,
    action MIN_MAX) and Unnormalize -> Device(cpu)."""
    from lerobot_vla_plugins.processors.pil_resize import pre_post_processors_with_pil_resize

    return pre_post_processors_with_pil_resize(config, dataset_stats, config.pil_image_size)
