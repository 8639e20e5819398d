"""lerobot-seer-convert: a synthetic checkpoint in the released Seer layout (names, shapes, ``module.`` prefix,
trainable parameters only) converts into a loadable ``seer`` policy whose parts compute what the released
modules compute on the same tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from lerobot_policy_seer.convert_seer import ConvertSeerConfig, convert, convert_state_dict, main
from lerobot_policy_seer.modeling_seer import SeerPolicy
from lerobot_vla_tools.testing.seer import released_mae_state_dict, write_released_seer_checkpoint

SIZES = {
    "hidden_dim": 32,
    "num_layers": 2,
    "num_resampler_queries": 2,
    "num_foresight_tokens": 4,
    "history": 4,
    "resampler_dim": 32,
    "resampler_depth": 2,
    "resampler_heads": 2,
    "resampler_head_dim": 8,
    "text_dim": 16,
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_seer_overrides):
    root = tmp_path_factory.mktemp("seer_convert")
    ckpt = write_released_seer_checkpoint(root / "12.pth", **SIZES)
    mae = root / "mae_pretrain_vit_base.pth"
    torch.save({"model": released_mae_state_dict(hidden_size=32)}, mae)
    cfg = ConvertSeerConfig(
        checkpoint=str(ckpt),
        output_dir=str(root / "seer_policy"),
        mae_checkpoint=str(mae),
        vision_encoder_name=tiny_seer_overrides["vision_encoder_name"],
        text_encoder_name=tiny_seer_overrides["text_encoder_name"],
        num_heads=2,
        resampler_heads=2,
        history_length=3,
    )
    out = convert(cfg)
    released = {
        k.removeprefix("module."): v
        for k, v in torch.load(ckpt, weights_only=True)["model_state_dict"].items()
    }
    return SeerPolicy.from_pretrained(out).eval(), released, torch.load(mae, weights_only=True)["model"], out


def test_converted_policy_directory_has_config_weights_and_processors(converted):
    _, _, _, out = converted
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
    } <= names


def test_converted_preprocessor_resizes_with_pil_as_the_released_clip_preprocess(converted):
    """The saved pipeline reloads with PilResizeStep (by class path) before the model sees the frames."""
    from lerobot.processor import PolicyProcessorPipeline

    from lerobot_vla_plugins.processors.pil_resize import PilResizeStep

    policy, _, _, out = converted
    pre = PolicyProcessorPipeline.from_pretrained(out, config_filename="policy_preprocessor.json")
    steps = [s for s in pre.steps if isinstance(s, PilResizeStep)]
    assert len(steps) == 1 and steps[0].size == 224 and steps[0].keys == policy.config.camera_keys
    assert policy.config.pil_image_size == 224


def test_sizes_are_read_from_the_checkpoint(converted):
    policy, released, _, _ = converted
    cfg = policy.config
    assert (cfg.hidden_dim, cfg.num_layers, cfg.num_resampler_queries, cfg.num_foresight_tokens) == (
        32,
        2,
        2,
        4,
    )
    assert cfg.history_length == 3 and cfg.gripper_state_mode == "one_hot"
    assert cfg.camera_keys == ["observation.images.image", "observation.images.image2"]
    assert cfg.action_feature.shape == (7,) and cfg.robot_state_feature.shape == (7,)
    # released training slices the position embedding to the history it fine-tunes with
    assert torch.equal(
        policy.model.step_embedding, released["transformer_backbone_position_embedding"][0, :3, 0]
    )


def released_perceiver(x, sd, depth, heads):
    """OpenRobotLab/Seer ``PerceiverResampler`` (single frame) on the raw tensors."""
    lat = sd["perceiver_resampler.latents"].unsqueeze(0).expand(x.shape[0], -1, -1)
    for i in range(depth):
        p = f"perceiver_resampler.layers.{i}."
        d = x.shape[-1]
        xm = F.layer_norm(x, (d,), sd[p + "0.norm_media.weight"], sd[p + "0.norm_media.bias"])
        lm = F.layer_norm(lat, (d,), sd[p + "0.norm_latents.weight"], sd[p + "0.norm_latents.bias"])
        q = lm @ sd[p + "0.to_q.weight"].T
        k, v = (torch.cat((xm, lm), 1) @ sd[p + "0.to_kv.weight"].T).chunk(2, -1)
        split = lambda t: t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
        out = (attn - attn.amax(-1, keepdim=True)).softmax(-1) @ v
        lat = out.transpose(1, 2).reshape(lat.shape[0], lat.shape[1], -1) @ sd[p + "0.to_out.weight"].T + lat
        h = F.layer_norm(lat, (d,), sd[p + "1.0.weight"], sd[p + "1.0.bias"]) @ sd[p + "1.1.weight"].T
        lat = F.gelu(h) @ sd[p + "1.3.weight"].T + lat
    return F.layer_norm(
        lat, (lat.shape[-1],), sd["perceiver_resampler.norm.weight"], sd["perceiver_resampler.norm.bias"]
    )


def test_resampler_computes_the_released_perceiver(converted):
    policy, released, _, _ = converted
    x = torch.randn(2, 196, 32)
    assert torch.allclose(
        policy.model.resampler(x), released_perceiver(x, released, depth=2, heads=2), atol=1e-5
    )


def timm_block(x, sd, p, heads):
    """timm ``vision_transformer.Block`` (qkv_bias, LayerNorm, GELU MLP) on raw tensors under prefix ``p``."""
    d = x.shape[-1]
    h = F.layer_norm(
        x, (d,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-5 if p.startswith("image") else 1e-6
    )
    qkv = (
        (h @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"])
        .view(x.shape[0], x.shape[1], 3, heads, -1)
        .permute(2, 0, 3, 1, 4)
    )
    attn = (qkv[0] @ qkv[1].transpose(-1, -2)) * qkv.shape[-1] ** -0.5
    out = (attn.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(x.shape)
    x = x + out @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
    h = F.layer_norm(
        x, (d,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-5 if p.startswith("image") else 1e-6
    )
    h = F.gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
    return x + h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]


def test_foresight_decoder_blocks_compute_the_released_timm_blocks(converted):
    policy, released, _, _ = converted
    x = torch.randn(2, 200, 32)
    ours = policy.model.foresight_decoder.blocks[1](x)
    # the released decoder blocks have 16 heads whatever the width
    assert torch.allclose(ours, timm_block(x, released, "image_decoder.1.", heads=16), atol=1e-5)


def test_action_head_computes_the_released_decoder_and_heads(converted):
    policy, sd, _, _ = converted
    x = torch.randn(5, 32)
    h = F.relu(
        F.relu(x @ sd["action_decoder.0.weight"].T + sd["action_decoder.0.bias"])
        @ sd["action_decoder.2.weight"].T
        + sd["action_decoder.2.bias"]
    )
    arm, gripper_logit = policy.model.action_head(x)
    assert torch.allclose(
        arm, torch.tanh(h @ sd["arm_action_decoder.0.weight"].T + sd["arm_action_decoder.0.bias"]), atol=1e-6
    )
    assert torch.allclose(
        torch.sigmoid(gripper_logit),
        torch.sigmoid(h @ sd["gripper_action_decoder.0.weight"].T + sd["gripper_action_decoder.0.bias"]),
        atol=1e-6,
    )


def test_mae_checkpoint_converts_into_the_vit_mae_encoder(converted):
    policy, _, mae, _ = converted
    pixels = torch.randn(1, 3, 224, 224)
    x = (
        F.conv2d(pixels, mae["patch_embed.proj.weight"], mae["patch_embed.proj.bias"], stride=16)
        .flatten(2)
        .transpose(1, 2)
    )
    x = torch.cat((mae["cls_token"] + mae["pos_embed"][:, :1], x + mae["pos_embed"][:, 1:]), dim=1)
    for i in range(2):
        x = timm_block(x, mae, f"blocks.{i}.", heads=2)
    expected = F.layer_norm(x, (32,), mae["norm.weight"], mae["norm.bias"], eps=1e-6)
    ours = policy.model.vision_encoder(
        pixel_values=pixels, noise=torch.arange(196.0).unsqueeze(0)
    ).last_hidden_state
    assert torch.allclose(ours, expected, atol=1e-5)


def test_converted_policy_acts(converted):
    policy, _, _, _ = converted
    obs = {
        "observation.images.image": torch.rand(1, 3, 64, 64),
        "observation.images.image2": torch.rand(1, 3, 64, 64),
        "observation.state": torch.randn(1, 7),
        "task": ["open the drawer"],
    }
    assert policy.select_action(obs).shape == (1, 7)


def test_a_longer_history_than_the_checkpoint_is_refused():
    sd = {"module.transformer_backbone_position_embedding": torch.zeros(1, 4, 1, 8)}
    with pytest.raises(ValueError, match="history_length=10 .* covers 4 steps"):
        convert_state_dict(sd, history_length=10)


def test_a_file_that_is_not_a_seer_checkpoint_is_refused(tmp_path, capsys):
    bad = tmp_path / "other.pth"
    torch.save({"model_state_dict": {"module.backbone.conv1.weight": torch.zeros(1)}}, bad)
    assert main([f"--checkpoint={bad}", f"--output_dir={tmp_path / 'out'}"]) == 2
    assert "lerobot-seer-convert: error" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_non_finite_or_exploding_weights_are_refused_unless_allowed(tmp_path, tiny_seer_overrides, caplog):
    """convert.checks.check_weights on the released tensors: a per-module summary, refusal naming the tensor."""
    import logging

    ckpt = write_released_seer_checkpoint(tmp_path / "12.pth", **SIZES)
    blob = torch.load(ckpt, weights_only=True)
    blob["model_state_dict"]["module.text_projector.weight"][0, 0] = float("nan")
    blob["model_state_dict"]["module.state_projector.weight"][0, 0] = 3e5
    torch.save(blob, ckpt)
    args = [
        f"--checkpoint={ckpt}",
        f"--vision_encoder_name={tiny_seer_overrides['vision_encoder_name']}",
        f"--text_encoder_name={tiny_seer_overrides['text_encoder_name']}",
        "--num_heads=2",
        "--resampler_heads=2",
    ]
    with caplog.at_level(logging.INFO):
        assert main([*args, f"--output_dir={tmp_path / 'out'}"]) == 2
    assert not (tmp_path / "out").exists()
    assert "text_projector" in caplog.text and "BAD" in caplog.text  # the per-module summary
    with caplog.at_level(logging.WARNING):
        assert main([*args, f"--output_dir={tmp_path / 'out2'}", "--allow_bad_weights=true"]) == 0
    assert (
        "text_projector.weight: max |w|" in caplog.text
        and "state_projector.weight: max |w| 3e+05" in caplog.text
    )
