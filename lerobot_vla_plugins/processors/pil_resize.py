"""Resize camera frames the way released code built on CLIP's / HF's image processors does: with PIL, on uint8.

The released Seer preprocessing is OpenAI CLIP's ``preprocess`` (torchvision ``Resize(224, BICUBIC)`` of a PIL image,
``CenterCrop(224)``, ``ToTensor``): the frame stays uint8 through a PIL bicubic resize of its shorter side and a
centre crop. A float torch resize of the same frame differs by up to about one grey level (measured in
``docs/parity.md``). :class:`PilResizeStep` reproduces the PIL path in a LeRobot preprocessor; the model's own
resize then has nothing left to do.

The step is not registered in LeRobot's ``ProcessorStepRegistry``: it is saved by its class path, which LeRobot
imports when it loads the pipeline (see ``processors.evo1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lerobot.configs.types import PipelineFeatureType, PolicyFeature
from lerobot.lerobot_types import EnvTransition, TransitionKey
from lerobot.processor import ProcessorStep
from torch import Tensor

if TYPE_CHECKING:
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.processor import PolicyProcessorPipeline


def pil_resize_center_crop(image: Tensor, size: int) -> Tensor:
    """(..., 3, H, W) in [0, 1] -> (..., 3, size, size) in [0, 1]: rounded to uint8, the shorter side resized to
    ``size`` with PIL bicubic (the longer as torchvision's ``Resize(int)``: ``int(size * long / short)``), centre
    cropped as torchvision's ``CenterCrop`` (offset ``int(round((L - size) / 2))``)."""
    from PIL import Image

    lead, (c, h, w) = image.shape[:-3], image.shape[-3:]
    flat = (image.reshape(-1, c, h, w).detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    out = []
    for frame in flat:
        pil = Image.fromarray(frame.permute(1, 2, 0).numpy())
        if (new_h, new_w) != (h, w):
            pil = pil.resize((new_w, new_h), Image.BICUBIC)
        pil = pil.crop((left, top, left + size, top + size))
        out.append(torch.from_numpy(np.array(pil)).permute(2, 0, 1))
    resized = torch.stack(out).to(image.device, torch.float32) / 255.0
    return resized.reshape(*lead, c, size, size).to(
        image.dtype if image.is_floating_point() else torch.float32
    )


@dataclass
class PilResizeStep(ProcessorStep):
    """Resize the observation images under ``keys`` to ``size`` x ``size`` with :func:`pil_resize_center_crop`.

    Attributes:
        keys: observation keys of the cameras (e.g. ``observation.images.rgb_static``).
        size: output side in pixels (224 for Seer's CLIP preprocessing).
    """

    keys: list[str] = field(default_factory=list)
    size: int = 224

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        observation = transition.get(TransitionKey.OBSERVATION)
        if not isinstance(observation, dict):
            return transition
        new_obs = dict(observation)
        for key in self.keys:
            if isinstance(new_obs.get(key), Tensor):
                new_obs[key] = pil_resize_center_crop(new_obs[key], self.size)
        new = transition.copy()
        new[TransitionKey.OBSERVATION] = new_obs
        return new

    def get_config(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "size": self.size}

    def transform_features(
        self, features: dict[PipelineFeatureType, dict[str, PolicyFeature]]
    ) -> dict[PipelineFeatureType, dict[str, PolicyFeature]]:
        obs = features.get(PipelineFeatureType.OBSERVATION, {})
        for key in self.keys:
            if key in obs:
                obs[key] = PolicyFeature(type=obs[key].type, shape=(obs[key].shape[0], self.size, self.size))
        return features


def pre_post_processors_with_pil_resize(
    config: PreTrainedConfig, dataset_stats: dict | None, size: int | None
) -> tuple[PolicyProcessorPipeline, PolicyProcessorPipeline]:
    """LeRobot's default policy pipelines (Rename -> AddBatch -> Device -> Normalize; Unnormalize -> Device(cpu)),
    with a :class:`PilResizeStep` over ``config.camera_keys`` after AddBatch when ``size`` is set."""
    from lerobot.processor.factory import make_default_policy_processor_steps, make_policy_processor_pipelines

    s = make_default_policy_processor_steps(config, dataset_stats)
    resize = [PilResizeStep(keys=list(config.camera_keys), size=size)] if size else []
    return make_policy_processor_pipelines(
        input_steps=[s.rename_observations, s.add_batch_dim, *resize, s.to_device, s.normalize],
        output_steps=[s.unnormalize, s.to_cpu],
    )
