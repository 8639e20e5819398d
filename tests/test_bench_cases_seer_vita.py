"""The bench cases of seer and vita_vla build: tiny ones act on a Meta-World-shaped observation, paper ones build
(weightless, on the meta device) at the published sizes."""

from __future__ import annotations

import pytest
import torch
from lerobot_vla_tools.speed import iter_cases

CASES = [c for c in iter_cases() if c.policy_type in ("seer", "vita_vla")]


def _config(case, extra: dict):
    from lerobot.policies.factory import make_policy_config
    from lerobot.utils.import_utils import register_third_party_plugins

    from lerobot_vla_plugins.features import metaworld_features

    register_third_party_plugins()

    cfg = make_policy_config(case.policy_type, **{**case.overrides, **extra})
    cfg.input_features, cfg.output_features = metaworld_features()
    return cfg


@pytest.mark.parametrize("case", [c for c in CASES if c.size == "tiny"], ids=lambda c: c.name)
def test_tiny_case_acts(case, tmp_path):
    from lerobot.policies.factory import get_policy_class

    cfg = _config(case, {**case.resolve_overrides(tmp_path), "device": "cpu"})
    policy = get_policy_class(case.policy_type)(cfg)
    obs = {
        "observation.image": torch.rand(1, 3, 480, 480),
        "observation.state": torch.randn(1, 4),
        "task": ["press the button"],
    }
    assert policy.select_action(obs).shape == (1, 4)


@pytest.mark.parametrize("case", [c for c in CASES if c.size == "paper"], ids=lambda c: c.name)
def test_paper_case_builds_at_the_published_size(case, tmp_path):
    from lerobot_vla_tools.cli.info import build_on_meta, count_parameters

    total = count_parameters(build_on_meta(_config(case, case.resolve_overrides(tmp_path))))["total_params"]
    # published sizes; VITA-VLA on evo1's InternVL3-1B (0.81B) lands near evo1's 0.77B
    low, high = {"vita_vla (evo1 backbone)": (7e8, 1e9)}.get(
        case.name, ({"seer": 2e8, "vita_vla": 7e9}[case.policy_type], 1e10)
    )
    assert low < total < high
