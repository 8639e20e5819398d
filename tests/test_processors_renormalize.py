"""processors.renormalize: one model's normalised feature -> another model's, with LeRobot's arithmetic."""

from __future__ import annotations

import pytest
import torch
from lerobot.configs.types import FeatureType, PolicyFeature

from lerobot_vla_plugins.errors import ConfigError
from lerobot_vla_plugins.processors.renormalize import FeatureNormaliser, Renormalizer

STATE = PolicyFeature(type=FeatureType.STATE, shape=(3,))


def side(owner, mode, **stats):
    return FeatureNormaliser(
        owner, "observation.state", STATE, mode, {k: torch.tensor(v) for k, v in stats.items()}
    )


def test_min_max_to_mean_std_goes_through_the_raw_value():
    lo, hi = torch.tensor([0.0, -2.0, 1.0]), torch.tensor([4.0, 2.0, 3.0])
    mean, std = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([2.0, 0.5, 1.0])
    r = Renormalizer(side("a", "MIN_MAX", min=lo, max=hi), side("b", "MEAN_STD", mean=mean, std=std))
    x = torch.tensor([[-1.0, 0.0, 1.0], [0.5, -0.5, 0.0]])
    raw = (x + 1) / 2 * (hi - lo) + lo  # LeRobot's MIN_MAX inverse
    assert torch.allclose(r(x), (raw - mean) / (std + 1e-8))
    assert not r.identity


def test_identical_normalisers_pass_the_value_through():
    a = side("a", "QUANTILES", q01=[0.0, 0.0, 0.0], q99=[1.0, 2.0, 3.0])
    b = side("b", "QUANTILES", q01=[0.0, 0.0, 0.0], q99=[1.0, 2.0, 3.0], mean=[9.0, 9.0, 9.0])
    r = Renormalizer(a, b)
    x = torch.randn(4, 3)
    assert r.identity and r(x) is x


def test_missing_or_misshapen_statistics_are_refused():
    with pytest.raises(
        ConfigError, match=r"b normalises observation.state with QUANTILES but has no q01/q99"
    ):
        Renormalizer(side("a", "IDENTITY"), side("b", "QUANTILES", mean=[0.0, 0.0, 0.0]))
    with pytest.raises(ConfigError, match=r"statistic 'mean' has 2 values, the feature is 3-D"):
        Renormalizer(side("a", "MEAN_STD", mean=[0.0, 0.0], std=[1.0, 1.0]), side("b", "IDENTITY"))
