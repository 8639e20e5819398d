"""Synthetic inputs shaped like a policy's features: what the speed benchmarks time and the ONNX export checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from lerobot.configs.types import PolicyFeature

#: Prompt used for every case (the Meta-World task the datasets of the testing kit use).
BENCH_PROMPT = "Press a button from the top"


def observation_batch(
    input_features: dict[str, PolicyFeature], batch_size: int, generator: torch.Generator | None
) -> dict[str, Any]:
    """An observation batch as ``lerobot-eval`` hands it to the preprocessor (after ``preprocess_observation``).

    Images ``(B, C, H, W)`` float in [0, 1], vectors ``(B, D)``, and the task prompt.
    """
    import torch
    from lerobot.configs.types import FeatureType

    obs: dict[str, Any] = {}
    for key, feat in input_features.items():
        if feat.type is FeatureType.VISUAL:
            obs[key] = torch.rand((batch_size, *feat.shape), generator=generator)
        else:
            obs[key] = torch.randn((batch_size, *feat.shape), generator=generator)
    obs["task"] = [BENCH_PROMPT] * batch_size
    return obs
