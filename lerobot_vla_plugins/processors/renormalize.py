"""Hand one model's normalised feature to another model that normalises it its own way.

A distillation teacher and its student each expect ``observation.state`` as *their own* normaliser produces
it: a LeRobot-trained teacher with its saved statistics, a converted released checkpoint raw (IDENTITY). The
batch arrives normalised for the student, so the teacher's copy is ``teacher.normalise(student.unnormalise(x))``,
computed with LeRobot's own ``NormalizerProcessorStep`` / ``UnnormalizerProcessorStep`` so the arithmetic is
exactly that of the two pipelines. A side whose mode needs statistics it does not have is refused with a
:class:`~lerobot_vla_plugins.errors.ConfigError` naming both sides, never passed through (LeRobot's normaliser
silently returns its input when a feature has no statistics).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from torch import Tensor

from lerobot_vla_plugins.errors import ConfigError

#: Statistics each LeRobot normalisation mode reads.
REQUIRED_STATS: dict[NormalizationMode, tuple[str, ...]] = {
    NormalizationMode.IDENTITY: (),
    NormalizationMode.MEAN_STD: ("mean", "std"),
    NormalizationMode.MIN_MAX: ("min", "max"),
    NormalizationMode.QUANTILES: ("q01", "q99"),
    NormalizationMode.QUANTILE10: ("q10", "q90"),
}


@dataclass
class FeatureNormaliser:
    """How one model normalises one feature.

    Attributes:
        owner: who this is, for messages (e.g. "the student (this run's dataset statistics)").
        key: the feature key, e.g. ``observation.state``.
        feature: its ``PolicyFeature`` (type and shape).
        mode: the model's normalisation mode for the feature's type.
        stats: the feature's statistics ({name: tensor}); only those ``mode`` needs are used.
    """

    owner: str
    key: str
    feature: PolicyFeature
    mode: NormalizationMode
    stats: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mode = NormalizationMode(self.mode)
        self.stats = {
            k: torch.as_tensor(v, dtype=torch.float32).flatten()
            for k, v in self.stats.items()
            if k in REQUIRED_STATS[self.mode]
        }

    def describe(self) -> str:
        if self.mode is NormalizationMode.IDENTITY:
            return f"{self.owner} reads {self.key} raw (IDENTITY)"
        return f"{self.owner} normalises {self.key} with {self.mode.value}"

    def check(self) -> None:
        """Raise a ConfigError when the mode needs statistics this side does not have, or of the wrong size."""
        missing = [k for k in REQUIRED_STATS[self.mode] if k not in self.stats]
        if missing:
            raise ConfigError(
                f"{self.describe()} but has no {'/'.join(missing)} statistics for it: its state cannot be "
                "reproduced; give it its statistics (a LeRobot-trained policy saves them in its "
                "policy_preprocessor_step_*_normalizer_processor.safetensors; lerobot-train passes the dataset's)"
            )
        size = self.feature.shape[-1]
        for name, value in self.stats.items():
            if value.numel() != size:
                raise ConfigError(
                    f"{self.owner}: {self.key} statistic {name!r} has {value.numel()} values, the feature is {size}-D"
                )

    def same_as(self, other: FeatureNormaliser) -> bool:
        """Both sides turn a raw value into the same normalised value."""
        if self.mode is not other.mode:
            return False
        return all(
            torch.allclose(self.stats[k], other.stats[k], rtol=1e-6, atol=1e-8)
            for k in REQUIRED_STATS[self.mode]
        )

    def _step(self, inverse: bool):
        """LeRobot's (un)normaliser for this feature, built once (it moves its statistics to the input's device)."""
        from lerobot.processor import NormalizerProcessorStep, UnnormalizerProcessorStep

        steps = self.__dict__.setdefault("_steps", {})
        if inverse not in steps:
            cls = UnnormalizerProcessorStep if inverse else NormalizerProcessorStep
            steps[inverse] = cls(
                features={self.key: self.feature},
                norm_map={self.feature.type: self.mode},
                stats={self.key: dict(self.stats)} if self.stats else {},
            )
        return steps[inverse]

    def apply(self, x: Tensor, inverse: bool = False) -> Tensor:
        """Normalise (or, ``inverse``, unnormalise) ``x`` (..., D) as this model's pipeline does."""
        if self.mode is NormalizationMode.IDENTITY:
            return x
        from lerobot.processor import TransitionKey
        from lerobot.processor.converters import create_transition

        step = self._step(inverse)
        if self.feature.type is FeatureType.ACTION:
            return step(create_transition(action=x))[TransitionKey.ACTION]
        return step(create_transition(observation={self.key: x}))[TransitionKey.OBSERVATION][self.key]


class Renormalizer:
    """``x`` normalised by ``source`` -> the same value normalised by ``target`` (identity when both agree).

    Raises:
        ConfigError: either side lacks the statistics its mode needs (both sides are named).
    """

    def __init__(self, source: FeatureNormaliser, target: FeatureNormaliser):
        for side in (source, target):
            try:
                side.check()
            except ConfigError as err:
                raise ConfigError(
                    f"{err} (converting {source.key} for {target.owner} from {source.owner}: "
                    f"{source.describe()}; {target.describe()})"
                ) from None
        self.source, self.target = source, target
        self.identity = source.same_as(target)

    def __call__(self, x: Tensor) -> Tensor:
        if self.identity:
            return x
        raw = self.source.apply(x.float(), inverse=True)
        return self.target.apply(raw).to(x.dtype)

    def __repr__(self) -> str:
        return f"Renormalizer({self.source.describe()} -> {self.target.describe()})"


def feature_stats(stats: Mapping[str, Mapping[str, Any]] | None, key: str) -> dict[str, Tensor]:
    """``stats[key]`` as tensors ({} when absent): LeRobot's dataset statistics or a normaliser's saved state."""
    entry = (stats or {}).get(key) or {}
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in entry.items()}


def saved_normalizer_stats(directory: str | os.PathLike, key: str) -> dict[str, Tensor]:
    """The statistics of ``key`` saved with a policy directory's preprocessor ({} when it saved none)."""
    from pathlib import Path

    from safetensors.torch import load_file

    files = sorted(
        Path(directory).expanduser().glob("policy_preprocessor_step_*_normalizer_processor.safetensors")
    )
    if not files:
        return {}
    prefix = f"{key}."
    return {k[len(prefix) :]: v for k, v in load_file(str(files[0])).items() if k.startswith(prefix)}
