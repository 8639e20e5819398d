"""Seer's model: the released token layout and attention pattern, history handling, losses and inference."""

from __future__ import annotations

import math

import pytest
import torch
from lerobot_policy_seer.configuration_seer import SeerConfig, resolve_gripper_state
from lerobot_policy_seer.ensembling import TemporalEnsembler
from lerobot_policy_seer.history import build_step_batch
from lerobot_policy_seer.losses import foresight_loss, patchify
from lerobot_policy_seer.modeling_seer import block_causal_mask, random_shift
from lerobot_policy_seer.state_action import StateEncoder


def released_attention_mask(k: int, num_a: int, num_b: int, num_obs: int, n_act: int) -> torch.Tensor:
    """OpenRobotLab/Seer ``generate_attention_mask`` with the fine-tuning settings (no goal / obs-only options),
    transcribed: 0 = attend, -inf = masked."""
    n = (num_a + num_b) * k
    mask = torch.zeros(n, n)
    for i in range(k):
        start, end = i * (num_a + num_b), (i + 1) * (num_a + num_b)
        mask[start:end, end:] = -math.inf
        mask[:, start + num_a : end] = -math.inf
        mask[
            start + num_a + num_obs : start + num_a + num_obs + n_act, start + num_a : start + num_a + num_obs
        ] = 0.0
    return mask == 0


@pytest.mark.parametrize("steps,num_a,num_obs,n_act", [(10, 16, 18, 3), (3, 6, 4, 3), (2, 36, 32, 3)])
def test_block_causal_mask_equals_the_released_generate_attention_mask(steps, num_a, num_obs, n_act):
    expected = released_attention_mask(steps, num_a, num_obs + n_act, num_obs, n_act)
    assert torch.equal(block_causal_mask(steps, num_a, num_obs, n_act), expected)


def test_a_step_has_the_released_37_tokens_for_base_and_71_for_large():
    """[text, state, 2 x N_q latents, 2 CLS, 2 x N_obs FRS, 3 INV]: base 1+1+12+2+18+3, large 1+1+32+2+32+3."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_vla_tools.cli.info import build_on_meta

    for size, expected in (("base", 37), ("large", 71)):
        cfg = SeerConfig(size=size)
        cfg.input_features = {
            "observation.images.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 128, 128)),
            "observation.images.image2": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 128, 128)),
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(7,)),
        }
        cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))}
        policy = build_on_meta(cfg)
        assert policy.model.tokens_per_step == expected


def test_outputs_of_a_step_do_not_depend_on_later_steps(make_seer):
    policy = make_seer().eval()
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, 1, 3, 224, 224)
    state = torch.randn(1, 3, 4)
    out = policy.model(pixels, state, ["press the button"])
    changed = pixels.clone()
    changed[:, 2] = torch.randn_like(changed[:, 2])
    state2 = state.clone()
    state2[:, 2] += 1
    out2 = policy.model(changed, state2, ["press the button"])
    assert torch.allclose(out.action_features[:, :2], out2.action_features[:, :2], atol=1e-6)
    assert not torch.allclose(out.action_features[:, 2], out2.action_features[:, 2], atol=1e-4)


def test_running_the_first_n_steps_equals_the_first_n_positions_of_a_longer_run(make_seer):
    """What the history left-alignment and the inference prefix rely on."""
    policy = make_seer().eval()
    pixels, state = torch.randn(1, 3, 1, 3, 224, 224), torch.randn(1, 3, 4)
    full = policy.model(pixels, state, ["press"])
    prefix = policy.model(pixels[:, :2], state[:, :2], ["press"])
    assert torch.allclose(full.arm[:, :2], prefix.arm, atol=1e-6)


def test_frozen_encoders_get_no_gradient_and_stay_in_eval_mode(make_seer, seer_batch):
    policy = make_seer()
    policy.train()
    assert not policy.model.vision_encoder.training and not policy.model.text_encoder.training
    loss, _ = policy.forward(seer_batch(policy))
    loss.backward()
    frozen = list(policy.model.vision_encoder.parameters()) + list(policy.model.text_encoder.parameters())
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    assert all(p.grad is not None for p in policy.model.trunk.parameters())
    assert {id(p) for p in policy.get_optim_params()}.isdisjoint({id(p) for p in frozen})


def test_loss_is_1_arm_plus_0_01_gripper_plus_0_1_foresight(make_seer, seer_batch):
    policy = make_seer(random_shift_pads=[])
    loss, info = policy.forward(seer_batch(policy))
    expected = info["arm_loss"] + 0.01 * info["gripper_loss"] + 0.1 * info["foresight_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_without_foresight_loss_no_future_frames_are_loaded(make_seer):
    assert make_seer(foresight_loss_weight=0.0).config.observation_delta_indices == [-2, -1, 0]
    assert make_seer().config.observation_delta_indices == [-2, -1, 0, 1, 2, 3]
    assert make_seer().config.action_delta_indices == [-2, -1, 0, 1, 2]


def test_a_window_that_starts_before_its_episode_is_left_aligned():
    """Sample 1 has one padded (repeated first) frame: its real frames move to positions 0..1, position 2 is
    masked, and labels follow the frames."""
    t, s, k = 6, 3, 3
    frames = torch.arange(2 * t, dtype=torch.float32).view(2, t, 1, 1, 1).expand(2, t, 3, 2, 2).clone()
    actions = (
        torch.arange(2 * (s + k - 1), dtype=torch.float32).view(2, s + k - 1, 1).expand(-1, -1, 2).clone()
    )
    batch = {
        "observation.image": frames,
        "observation.state": torch.arange(2 * t, dtype=torch.float32).view(2, t, 1),
        "observation.state_is_pad": torch.tensor([[False] * t, [True] + [False] * (t - 1)]),
        "action": actions,
        "action_is_pad": torch.zeros(2, s + k - 1, dtype=torch.bool),
    }
    steps = build_step_batch(batch, ["observation.image"], s, k, foresight_step=3)
    assert steps.state[0, :, 0].tolist() == [0, 1, 2]
    assert steps.state[1, :, 0].tolist() == [7, 8, 8]  # frames 1, 2 then the last one repeated
    assert steps.step_valid.tolist() == [[True, True, True], [True, True, False]]
    assert steps.arm_target[1, 0, :, 0].tolist() == [6, 7, 8]  # actions of frames 1, 2, 3
    assert steps.foresight[1, 0, 0, 0, 0, 0].item() == 10  # frame 1 + 3 = index 4 of sample 1
    assert steps.foresight_valid.tolist() == [[True, True, True], [True, True, False]]


def test_gripper_labels_are_a_plus_1_over_2_of_the_normalised_gripper_action():
    batch = {
        "observation.image": torch.zeros(1, 1, 3, 2, 2),
        "observation.state": torch.zeros(1, 1, 2),
        "action": torch.tensor([[[0.5, -1.0], [0.5, 1.0], [0.5, 0.0]]]),
        "action_is_pad": torch.tensor([[False, False, True]]),
    }
    steps = build_step_batch(batch, ["observation.image"], 1, 3)
    assert steps.gripper_target.flatten().tolist() == [0.0, 1.0, 0.5]
    assert steps.action_valid.tolist() == [[[True, True, False]]]


@pytest.mark.parametrize(
    "state_dim,expected",
    [(7, ("one_hot", 1)), (8, ("width", 2)), (4, ("width", 1)), (10, ("width", 1))],
)
def test_gripper_state_layout_defaults_follow_the_state_size(state_dim, expected):
    assert resolve_gripper_state(state_dim, None, None) == expected


def test_gripper_state_layout_rejects_a_one_hot_over_two_dims():
    with pytest.raises(ValueError, match="gripper_state_dim=1"):
        resolve_gripper_state(8, "one_hot", 2)
    with pytest.raises(ValueError, match="no arm dims"):
        resolve_gripper_state(4, None, 4)


def test_one_hot_gripper_state_is_closed_or_open_at_zero():
    enc = StateEncoder(arm_dim=2, gripper_dim=1, gripper_mode="one_hot", width=4)
    with torch.no_grad():
        enc.gripper.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [0, 0], [0, 0]]))
        enc.gripper.bias.zero_()
    closed = enc.gripper(torch.nn.functional.one_hot(torch.tensor(0), 2).float())
    states = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.3]])
    # same output as feeding the one-hot by hand: -1 -> [1, 0], +1 and 0.3 -> [0, 1]
    feats = [
        enc.gripper(torch.nn.functional.one_hot(torch.tensor(int(g > 0)), 2).float()) for g in states[:, 2]
    ]
    assert torch.equal(feats[0], closed)
    assert torch.allclose(enc(states)[1], enc.projector(torch.cat((enc.arm(states[1, :2]), feats[1]))))


def test_temporal_ensemble_weights_the_oldest_prediction_first():
    ens = TemporalEnsembler(temperature=0.5, horizon=3)
    ens.update(torch.tensor([[[1.0], [2.0], [3.0]]]))  # predicted at t=0 for t=0,1,2
    ens.update(torch.tensor([[[10.0], [20.0], [30.0]]]))  # at t=1
    out = ens.update(
        torch.tensor([[[100.0], [200.0], [300.0]]])
    )  # at t=2: predictions for t=2 are 3, 20, 100
    w = [math.exp(-0.5 * i) for i in range(3)]
    assert out.item() == pytest.approx((3 * w[0] + 20 * w[1] + 100 * w[2]) / sum(w))


def test_foresight_loss_is_zero_for_the_per_patch_normalised_target():
    images = torch.rand(2, 3, 32, 32)
    target = patchify(images, 16)
    normed = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert foresight_loss(normed, images, 16, torch.ones(2, dtype=torch.bool)).item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert foresight_loss(normed + 1, images, 16, torch.tensor([True, False])).item() == pytest.approx(1.0)


def test_random_shift_moves_all_frames_of_a_sample_and_view_by_the_same_offset():
    torch.manual_seed(0)
    base = torch.rand(1, 1, 1, 3, 16, 16)
    pixels = base.expand(2, 4, 1, 3, 16, 16).clone()
    shifted = random_shift(pixels, [3])
    for b in range(2):
        assert all(torch.equal(shifted[b, 0], shifted[b, t]) for t in range(4))


def _observations(n: int) -> list[dict]:
    return [
        {
            "observation.image": torch.rand(1, 3, 64, 64),
            "observation.state": torch.randn(1, 4),
            "task": ["press"],
        }
        for _ in range(n)
    ]


def _direct_run(policy, frames: list[dict]):
    """The model on the given frames as one window (B = 1)."""
    pixels = torch.stack(
        [policy.model.preprocess(torch.stack([o["observation.image"]], 1)) for o in frames], 1
    )
    with torch.no_grad():
        return policy.model(pixels, torch.stack([o["observation.state"] for o in frames], 1), ["press"])


def test_select_action_runs_the_observed_steps_and_keeps_at_most_the_history(make_seer):
    policy = make_seer()
    obs = _observations(4)
    actions = [policy.select_action(o) for o in obs]
    assert actions[0].shape == (1, 4) and len(policy._history) == 3
    # the 2nd action is the first predicted action of a direct run on the first two observations
    direct = _direct_run(policy, obs[:2])
    assert torch.allclose(actions[1][0, :3], direct.arm[0, -1, 0], atol=1e-5)
    assert actions[1][0, 3].item() in (-1.0, 1.0)


def test_select_action_follows_the_released_calvin_rule(make_seer):
    """eval_utils_calvin.py: a short history is padded at the end with the last frame and position n-1 (the
    current frame) is read, action 0; the block-causal trunk makes the padding invisible there."""
    policy = make_seer(binarize_gripper=False)  # history 3
    obs = _observations(2)
    actions = [policy.select_action(o) for o in obs]
    frames = [obs[0], obs[1], obs[1]]  # padded to S = 3 with the last frame
    padded = _direct_run(policy, frames)
    assert torch.allclose(actions[1][0, :3], padded.arm[0, 1, 0], atol=1e-5)
    assert torch.allclose(
        actions[1][0, 3], 2 * torch.sigmoid(padded.gripper_logit[0, 1, 0, 0]) - 1, atol=1e-5
    )


def test_predict_action_chunk_gives_the_three_future_actions(make_seer):
    policy = make_seer(binarize_gripper=False)
    chunk = policy.predict_action_chunk(
        {
            "observation.image": torch.rand(2, 3, 64, 64),
            "observation.state": torch.randn(2, 4),
            "task": ["a", "b"],
        }
    )
    assert chunk.shape == (2, 3, 4) and chunk.abs().max() <= 1


def test_save_and_load_round_trip_gives_the_same_actions(make_seer, tmp_path):
    from lerobot_policy_seer.modeling_seer import SeerPolicy

    policy = make_seer().eval()
    policy.save_pretrained(tmp_path)
    loaded = SeerPolicy.from_pretrained(tmp_path)
    obs = {
        "observation.image": torch.rand(1, 3, 64, 64),
        "observation.state": torch.randn(1, 4),
        "task": ["press"],
    }
    assert torch.allclose(policy.select_action(obs), loaded.select_action(obs), atol=1e-6)


def test_pil_resize_reproduces_the_released_clip_preprocess():
    """OpenAI CLIP preprocess = torchvision Resize(224, BICUBIC) on a PIL image, CenterCrop(224), ToTensor; written
    here with PIL directly from those definitions (shorter side to 224, centre crop)."""
    import numpy as np
    from PIL import Image

    from lerobot_vla_plugins.processors.pil_resize import pil_resize_center_crop

    g = torch.Generator().manual_seed(0)
    for h, w in ((200, 200), (84, 84), (120, 160)):
        frame = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        pil = Image.fromarray(frame.permute(1, 2, 0).numpy())
        short = min(h, w)
        size = (224 * w // short, 224 * h // short)  # torchvision Resize(int): (w, h) for PIL
        pil = pil.resize(size, Image.BICUBIC)
        left, top = round((size[0] - 224) / 2), round((size[1] - 224) / 2)
        expected = (
            torch.from_numpy(np.array(pil.crop((left, top, left + 224, top + 224)))).permute(2, 0, 1) / 255
        )
        ours = pil_resize_center_crop(frame.float().unsqueeze(0) / 255, 224)[0]
        assert torch.equal(ours, expected.float())


def test_pil_image_size_puts_the_resize_step_in_the_preprocessor(make_seer):
    from lerobot_policy_seer.processor_seer import make_seer_pre_post_processors

    from lerobot_vla_plugins.processors.pil_resize import PilResizeStep

    policy = make_seer(pil_image_size=224)
    pre, _ = make_seer_pre_post_processors(policy.config)
    steps = [s for s in pre.steps if isinstance(s, PilResizeStep)]
    assert len(steps) == 1 and steps[0].keys == policy.config.camera_keys
    out = pre(
        {"observation.image": torch.rand(3, 64, 64), "observation.state": torch.zeros(4), "task": "press"}
    )
    assert out["observation.image"].shape == (1, 3, 224, 224)
    assert not any(
        isinstance(s, PilResizeStep) for s in make_seer_pre_post_processors(make_seer().config)[0].steps
    )
