"""Real-time chunking for A1's flow-matching head (LeRobot's ``RTCProcessor`` guidance at every Euler step of every
prediction): the guided chunk follows the frozen prefix of the previous chunk, at full depth and with early exit +
inter-layer truncated flow matching; ``lerobot-rollout --inference.type=rtc`` drives a simulated arm with it."""

from __future__ import annotations

import math

import pytest
import torch

from lerobot_vla_plugins.adaptive import ExitCalibration, calibrate_thresholds


def _rtc(policy, **kw):
    from lerobot.policies.rtc.configuration_rtc import RTCConfig

    policy.config.rtc_config = RTCConfig(execution_horizon=4, **kw)
    policy.init_rtc_processor()
    return policy


def _obs(make_batch):
    batch = make_batch(1)
    batch.pop("action"), batch.pop("action_is_pad")
    return batch


def test_flow_matching_policy_declares_rtc_with_the_call_shape_lerobot_rollout_checks(make_policy):
    from lerobot.rollout.inference.rtc import supports_rtc_inference

    assert supports_rtc_inference(make_policy())
    assert not supports_rtc_inference(make_policy(head="mlp"))  # nothing to guide


def test_rtc_arguments_without_rtc_setup_are_refused_with_the_fix(make_policy, make_batch):
    policy = make_policy().eval()
    with pytest.raises(RuntimeError, match="rtc_config and call policy.init_rtc_processor"):
        policy.predict_action_chunk(
            _obs(make_batch), inference_delay=1, prev_chunk_left_over=torch.zeros(1, 4, 4)
        )


def test_guided_full_depth_chunk_follows_the_frozen_prefix(make_policy, make_batch):
    # 10 Euler steps: the last step moves the clean estimate a fraction h g(h) = 0.911 of the way to the prefix
    # (tests/test_flow_matching.py), so the executed prefix ends within 9% of the unguided chunk's distance.
    policy = _rtc(make_policy().eval())
    batch, delay = _obs(make_batch), 2
    prev = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    free = policy.predict_action_chunk(batch)
    torch.manual_seed(0)
    guided = policy.predict_action_chunk(batch, inference_delay=delay, prev_chunk_left_over=prev)
    gap_free = (free[:, :delay] - prev[:, :delay]).abs().max()
    gap = (guided[:, :delay] - prev[:, :delay]).abs().max()
    assert gap <= 0.1 * gap_free, (float(gap), float(gap_free))


def test_guided_truncated_flow_matching_lands_on_the_frozen_prefix_at_every_exit(
    make_policy, make_batch, monkeypatch
):
    # delta = 2 Euler steps: at t = 1/2 the RTC weight is 2, so x_0 = estimate + 1 * (prefix - estimate): every
    # exit's chunk (each truncated sweep, warm-started or not) reproduces the executed prefix.
    from lerobot_vla_plugins.heads import flow_matching

    policy = make_policy(exit_fm_steps=2).eval()
    batch = _obs(make_batch)
    res, _ = policy.model.predict_early_exit(batch, thresholds=None)
    m = policy.model
    th = calibrate_thresholds(res.discrepancies, "exp", 1.0)
    policy.set_exit_calibration(
        ExitCalibration(
            m.exit_layers, th, m.num_layers, "cosine", "exp", 1.0, False, 1, policy.calibration_settings()
        )
    )
    _rtc(policy)
    chunks = []
    real = flow_matching.FlowMatchingScheme.sample
    monkeypatch.setattr(
        flow_matching.FlowMatchingScheme,
        "sample",
        lambda self, f, n, **kw: chunks.append(real(self, f, n, **kw)) or chunks[-1],
    )
    prev, delay = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(6)), 2
    out = policy.predict_action_chunk(batch, inference_delay=delay, prev_chunk_left_over=prev)
    assert len(chunks) >= 2  # the reference and at least one exit
    for c in chunks:
        torch.testing.assert_close(c[:, :delay, :4], prev[:, :delay], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, :delay], prev[:, :delay], atol=1e-5, rtol=1e-5)
    assert policy.last_exit_info["early_exit"]


H, W = 48, 64
CAM = f"{{type: opencv, index_or_path: 0, width: {W}, height: {H}, fps: 30}}"


@pytest.mark.slow
def test_lerobot_rollout_with_rtc_drives_the_simulated_xarm6(tmp_path, tiny_molmo, tiny):
    pytest.importorskip("lerobot_robot_xarm6")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot_policy_a1.configuration_a1 import A1Config
    from lerobot_policy_a1.modeling_a1 import A1Policy
    from lerobot_policy_a1.processor_a1 import make_a1_pre_post_processors
    from lerobot_robot_xarm6.sim_xarm import xarm6_joint_limits
    from lerobot_vla_tools.testing.fixtures import run_cli
    from lerobot_vla_tools.testing.robot_policy import robot_features, save_checkpoint, sim_rollout_args

    lo, hi = xarm6_joint_limits()
    lo, hi = [*lo, 0.0], [*hi, 1.0]
    inputs, outputs, stats = robot_features(lo, hi, {"image_1": (H, W), "image_2": (H, W)})
    cfg = A1Config(
        backbone_family="molmo",
        vlm_name=str(tiny_molmo),
        input_features=inputs,
        output_features=outputs,
        **tiny,
    )
    ckpt = save_checkpoint(tmp_path / "ckpt", A1Policy(cfg), *make_a1_pre_post_processors(cfg, stats))
    root = tmp_path / "rec"
    robot = ["--robot.backend=sim", f"--robot.cameras={{image_1: {CAM}, image_2: {CAM}}}"]
    proc = run_cli(
        "lerobot-rollout",
        "--inference.type=rtc",
        f"--inference.rtc.execution_horizon={cfg.chunk_size}",
        *sim_rollout_args(ckpt, "xarm6", robot, root, "local/rollout_a1_rtc"),
        timeout=600,
    )
    assert "RTC inference thread started" in proc.stdout  # the RTC engine ran, not the sync one
    assert "RTC inference error" not in proc.stdout and "Fatal error in RTC thread" not in proc.stdout
    ds = LeRobotDataset("local/rollout_a1_rtc", root=root)
    assert ds.meta.robot_type == "xarm6" and ds.meta.total_frames >= 2
    state = torch.stack([ds[i]["observation.state"] for i in range(len(ds))])
    low, high = torch.tensor(lo), torch.tensor(hi)
    assert bool(
        (state >= low - 1e-4).all() and (state <= high + 1e-4).all()
    )  # the arm stayed within its limits
    assert math.isfinite(float(state.abs().max()))
