"""The RTC-vs-sync smoothness benchmark (tools/src/lerobot_vla_tools/speed/rtc_smoothness.py): its schedules follow LeRobot's
sync engine and RTC ``ActionQueue``, its jerk is the third difference, and it runs a real RTC policy (tiny A1)."""

from __future__ import annotations

import math

import pytest
import torch
from lerobot_vla_tools.speed.rtc_smoothness import boundary_stats, compare, jerk, run_rtc, run_sync


class CountingChunks:
    """A stand-in policy whose chunk k is [10 k, 10 k + 1, ...]: it shows which action of which chunk executes."""

    def __init__(self, chunk: int, n_action_steps: int):
        from types import SimpleNamespace

        self.config = SimpleNamespace(chunk_size=chunk, n_action_steps=n_action_steps, rtc_config=None)
        self.calls: list[dict] = []

    def supports_rtc(self) -> bool:
        return True

    def init_rtc_processor(self) -> None:
        pass

    def reset(self) -> None:
        self.calls.clear()

    def predict_action_chunk(self, batch, inference_delay=None, prev_chunk_left_over=None):
        k = len(self.calls)
        self.calls.append({"tick": batch["tick"], "delay": inference_delay, "prev": prev_chunk_left_over})
        return (10.0 * k + torch.arange(self.config.chunk_size, dtype=torch.float32)).view(1, -1, 1)


def _identity(x):
    return x


def test_sync_executes_n_actions_then_holds_while_the_next_chunk_is_computed():
    policy = CountingChunks(chunk=8, n_action_steps=4)
    run = run_sync(policy, _identity, _identity, lambda t: {"tick": t}, ticks=16, n_action_steps=4, delay=2)
    assert run.actions.view(-1).tolist() == [0, 1, 2, 3, 3, 3, 10, 11, 12, 13, 13, 13, 20, 21, 22, 23]
    assert (run.boundaries, run.waits, run.chunks) == (
        [0, 4, 6, 10, 12],
        4,
        3,
    )  # chunk starts and wait starts
    assert [c["tick"] for c in policy.calls] == [
        0,
        4,
        10,
    ]  # each chunk sees the observation of its request tick


def test_rtc_requests_early_and_drops_the_actions_spent_while_computing():
    from lerobot.policies.rtc.configuration_rtc import RTCConfig

    policy = CountingChunks(chunk=8, n_action_steps=4)
    rtc = RTCConfig(execution_horizon=8)
    run = run_rtc(
        policy, _identity, _identity, lambda t: {"tick": t}, 16, n_action_steps=4, delay=2, rtc_config=rtc
    )
    # chunk k is requested 2 ticks before chunk k-1 has had 4 actions executed, merged 2 ticks later without its
    # first 2 actions (LeRobot's ActionQueue._replace_actions_queue): no tick waits
    assert run.actions.view(-1).tolist() == [0, 1, 2, 3, 12, 13, 14, 15, 22, 23, 24, 25, 32, 33, 34, 35]
    assert (run.boundaries, run.waits) == ([0, 4, 8, 12], 0)
    second = policy.calls[1]
    assert second["tick"] == 2 and second["delay"] == 2
    # the unexecuted original actions of chunk 0, zero-padded to the execution horizon as LeRobot's RTC engine does
    assert second["prev"].view(-1).tolist() == [2, 3, 4, 5, 6, 7, 0, 0]
    assert policy.calls[0]["prev"] is None and policy.calls[0]["delay"] == 0


def test_jerk_is_the_third_difference_times_fps_cubed():
    t = torch.arange(10, dtype=torch.float32)
    actions = torch.stack([t**3, 2 * t], dim=1)  # third differences: 6 and 0
    torch.testing.assert_close(jerk(actions, fps=10.0), torch.full((7,), 6000.0))


def test_boundary_stencils_are_separated_from_the_inside_of_chunks():
    from lerobot_vla_tools.speed.rtc_smoothness import Rollout

    a = torch.zeros(12, 1)
    a[6:] = 1.0  # a step at the boundary tick 6
    stats = boundary_stats(Rollout(a, [0, 6], 0, 2), fps=1.0)
    # the stencil centred on the step (ticks 4..7): |a7 - 3 a6 + 3 a5 - a4| = 2; its neighbours see it at an edge: 1
    assert stats["boundary_max_jerk"] == 2.0 and stats["inside_max_jerk"] == 1.0


def test_a1_runs_through_the_benchmark_in_both_modes(tmp_path):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.rtc.configuration_rtc import RTCConfig
    from lerobot_policy_a1.configuration_a1 import A1Config
    from lerobot_policy_a1.modeling_a1 import A1Policy
    from lerobot_vla_tools.testing.molmo import build_tiny_molmo

    cfg = A1Config(
        vlm_name=str(build_tiny_molmo(tmp_path / "vlm")),
        expert_hidden_size=32,
        expert_num_heads=2,
        expert_intermediate_size=64,
        chunk_size=8,
        n_action_steps=4,
        device="cpu",
        input_features={
            "observation.image": PolicyFeature(FeatureType.VISUAL, (3, 56, 56)),
            "observation.state": PolicyFeature(FeatureType.STATE, (4,)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (4,))},
    )
    policy = A1Policy(cfg).eval()
    g = torch.Generator().manual_seed(0)
    frames = [
        {
            "observation.image": torch.rand(1, 3, 56, 56, generator=g),
            "observation.state": torch.randn(1, 4, generator=g),
            "task": ["push"],
        }
        for _ in range(12)
    ]
    rows = compare(
        policy, _identity, _identity, lambda t: frames[t], 12, 4, [2], 30.0, RTCConfig(execution_horizon=8)
    )
    assert [(r["mode"], r["delay"]) for r in rows] == [("sync", 2), ("rtc", 2)]
    assert rows[0]["waits"] == 2 * (rows[0]["chunks"] - 1) and rows[1]["waits"] == 0
    assert all(math.isfinite(r["boundary_max_jerk"]) for r in rows)
    assert policy.config.rtc_config is None  # the benchmark leaves the policy as it found it


def test_policies_without_rtc_are_refused():
    policy = CountingChunks(8, 4)
    policy.supports_rtc = lambda: False
    with pytest.raises(ValueError, match="does not support real-time chunking"):
        compare(policy, _identity, _identity, lambda t: {"tick": t}, 8, 4, [1], 30.0, None)
