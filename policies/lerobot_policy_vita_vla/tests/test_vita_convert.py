"""lerobot-vita-convert: a synthetic checkpoint in the released VITA-1.5 layout converts into a native InternVL
checkpoint that computes what VITA-1.5's own modules compute (InternViT, x0.5 pixel shuffle, mlp2x_gelu
projector, Qwen2 language model), at the checkpoint's size and at the 200 px-style reduced size."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from lerobot_policy_vita_vla.convert_vita import ConvertVitaConfig, convert, main
from lerobot_vla_tools.testing.vita import write_released_vita15
from safetensors.torch import load_file

from lerobot_vla_plugins.backbones.internvl import IMAGENET_MEAN, IMAGENET_STD, InternVLBackbone


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("vita15")
    vita_dir, vit_dir = write_released_vita15(root / "VITA-1.5")
    weights = {}
    for shard in sorted(vita_dir.glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    out = convert(
        ConvertVitaConfig(
            vita_path=str(vita_dir), vision_tower_path=str(vit_dir), output_dir=str(root / "converted")
        )
    )
    return weights, out, vita_dir, vit_dir


def vita_image_tokens(pixels: torch.Tensor, sd: dict, heads: int = 2, patch: int = 4) -> torch.Tensor:
    """VITA-1.5's image path on raw tensors: InternViT (remote code: InternVisionEmbeddings with _get_pos_embed,
    InternVisionEncoderLayer), last hidden state without CLS, pixel_shuffle(x * 0.5), mm_projector."""
    p = "model.vision_tower.vision_tower."
    x = F.conv2d(
        pixels,
        sd[p + "embeddings.patch_embedding.weight"],
        sd[p + "embeddings.patch_embedding.bias"],
        stride=patch,
    )
    b, c, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    pos = sd[p + "embeddings.position_embedding"]
    g = round((pos.shape[1] - 1) ** 0.5)
    grid = F.interpolate(
        pos[:, 1:].reshape(1, g, g, c).permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False
    )
    pos = torch.cat((pos[:, :1], grid.reshape(1, c, h * w).permute(0, 2, 1)), dim=1)
    x = torch.cat((sd[p + "embeddings.class_embedding"].expand(b, 1, c), x), dim=1) + pos
    i = 0
    while f"{p}encoder.layers.{i}.ls1" in sd:
        q = f"{p}encoder.layers.{i}."
        y = F.layer_norm(x, (c,), sd[q + "norm1.weight"], sd[q + "norm1.bias"], eps=1e-6)
        qkv = (
            (y @ sd[q + "attn.qkv.weight"].T + sd[q + "attn.qkv.bias"])
            .reshape(b, -1, 3, heads, c // heads)
            .permute(2, 0, 3, 1, 4)
        )
        attn = ((qkv[0] * (c // heads) ** -0.5) @ qkv[1].transpose(-2, -1)).softmax(-1)
        y = (attn @ qkv[2]).transpose(1, 2).reshape(b, -1, c) @ sd[q + "attn.proj.weight"].T + sd[
            q + "attn.proj.bias"
        ]
        x = x + y * sd[q + "ls1"]
        y = F.layer_norm(x, (c,), sd[q + "norm2.weight"], sd[q + "norm2.bias"], eps=1e-6)
        y = (
            F.gelu(y @ sd[q + "mlp.fc1.weight"].T + sd[q + "mlp.fc1.bias"]) @ sd[q + "mlp.fc2.weight"].T
            + sd[q + "mlp.fc2.bias"]
        )
        x = x + y * sd[q + "ls2"]
        i += 1
    x = (
        x[:, 1:].reshape(b, h, w, c) * 0.5
    )  # InternViTVisionTower: pixel_shuffle(features * scale_pix_shuffle)
    n, ww, hh, cc = x.shape
    x = x.view(n, ww, hh // 2, cc * 2).permute(0, 2, 1, 3).contiguous()
    x = x.view(n, hh // 2, ww // 2, cc * 4).permute(0, 2, 1, 3).contiguous().reshape(n, -1, cc * 4)
    x = F.gelu(x @ sd["model.mm_projector.0.weight"].T + sd["model.mm_projector.0.bias"])
    return x @ sd["model.mm_projector.2.weight"].T + sd["model.mm_projector.2.bias"]


def normalised(images: torch.Tensor) -> torch.Tensor:
    return (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )


@pytest.mark.parametrize("size,tokens", [(32, 16), (56, 49)])
def test_converted_vision_path_computes_vitas_image_tokens(released, size, tokens):
    """At the checkpoint's 32 px and at 56 px (position embeddings interpolated as InternViT does at run time,
    as VITA-VLA runs the 448 px tower at 200 px)."""
    weights, out, _, _ = released
    backbone = InternVLBackbone.from_pretrained(str(out), image_size=size)
    images = torch.rand(2, 3, size, size)
    ours = backbone.encode_images(images.unsqueeze(1))[:, 0]
    assert ours.shape == (2, tokens, 64)
    assert torch.allclose(ours, vita_image_tokens(normalised(images), weights), atol=1e-5)


def test_converted_language_model_computes_vitas_qwen2(released):
    from transformers import Qwen2Config, Qwen2Model

    weights, out, vita_dir, _ = released
    cfg = json.loads((vita_dir / "config.json").read_text())
    reference = Qwen2Model(
        Qwen2Config(
            **{
                k: cfg[k]
                for k in (
                    "hidden_size",
                    "intermediate_size",
                    "num_hidden_layers",
                    "num_attention_heads",
                    "num_key_value_heads",
                    "vocab_size",
                    "rms_norm_eps",
                    "rope_theta",
                )
            }
        )
    )
    reference.load_state_dict(
        {
            k.removeprefix("model."): v
            for k, v in weights.items()
            if k.startswith(("model.layers", "model.embed", "model.norm"))
        }
    )
    backbone = InternVLBackbone.from_pretrained(str(out))
    ids = torch.randint(0, 300, (1, 12))
    expected = reference.eval()(input_ids=ids).last_hidden_state
    ours = backbone.decoder(input_ids=ids).last_hidden_state
    assert torch.allclose(ours, expected, atol=1e-5)


def test_converted_tokenizer_adds_the_image_state_and_action_tokens(released):
    from transformers import AutoTokenizer

    _, out, vita_dir, _ = released
    before, after = AutoTokenizer.from_pretrained(vita_dir), AutoTokenizer.from_pretrained(out)
    ids = [after.convert_tokens_to_ids(t) for t in ("<IMG_CONTEXT>", "<state>", "<action>")]
    assert ids == [len(before), len(before) + 1, len(before) + 2]
    config = json.loads((out / "config.json").read_text())
    assert config["image_token_id"] == ids[0] and config["projector_layer_norm"] is False
    assert max(ids) < config["text_config"]["vocab_size"]


def test_converted_checkpoint_drops_the_audio_encoder_and_loads_without_missing_keys(released):
    from transformers import InternVLForConditionalGeneration

    _, out, _, _ = released
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert not any("audio" in k for k in index)
    _, info = InternVLForConditionalGeneration.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"], info["missing_keys"]


def test_vision_weights_can_come_from_the_internvit_checkpoint(tmp_path):
    """When the VITA checkpoint lacks the tower (as LLaVA-style releases sometimes do), --vision_tower_path supplies it."""
    from safetensors.torch import save_file

    vita_dir, vit_dir = write_released_vita15(tmp_path / "VITA-1.5")
    index = json.loads((vita_dir / "model.safetensors.index.json").read_text())
    vision = {}
    for shard in sorted(set(index["weight_map"].values())):
        sd = load_file(str(vita_dir / shard))
        vision.update(
            {
                k.removeprefix("model.vision_tower.vision_tower."): v
                for k, v in sd.items()
                if k.startswith("model.vision_tower.")
            }
        )
        save_file(
            {k: v for k, v in sd.items() if not k.startswith("model.vision_tower.")}, str(vita_dir / shard)
        )
    save_file(vision, str(vit_dir / "model.safetensors"))
    out = convert(
        ConvertVitaConfig(
            vita_path=str(vita_dir), vision_tower_path=str(vit_dir), output_dir=str(tmp_path / "out")
        )
    )
    assert InternVLBackbone.from_pretrained(str(out)).num_image_tokens == 16
    (vit_dir / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError):
        convert(
            ConvertVitaConfig(
                vita_path=str(vita_dir), vision_tower_path=str(vit_dir), output_dir=str(tmp_path / "out2")
            )
        )
    assert not (tmp_path / "out2").exists()


def test_a_checkpoint_that_is_not_vita_is_refused(tmp_path, capsys):
    vita_dir, _ = write_released_vita15(tmp_path / "VITA-1.5")
    cfg = json.loads((vita_dir / "config.json").read_text())
    (vita_dir / "config.json").write_text(json.dumps({**cfg, "model_type": "llava"}))
    assert main([f"--vita_path={vita_dir}", f"--output_dir={tmp_path / 'out'}"]) == 2
    assert "is not VITA's" in capsys.readouterr().err
    (vita_dir / "config.json").write_text(json.dumps({**cfg, "mm_projector_type": "ldp"}))
    assert main([f"--vita_path={vita_dir}", f"--output_dir={tmp_path / 'out'}"]) == 2
    assert "only VITA-1.5's mlp2x_gelu" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_non_finite_weights_are_refused_unless_allowed(tmp_path, capsys):
    """convert.checks.check_weights on every released shard (refusal names the tensor; the flag converts)."""
    from safetensors.torch import save_file

    vita_dir, vit_dir = write_released_vita15(tmp_path / "VITA-1.5")
    shard = sorted(vita_dir.glob("*.safetensors"))[0]
    sd = load_file(str(shard))
    key = next(k for k in sd if k.endswith("weight") and sd[k].is_floating_point())
    sd[key] = sd[key].clone()
    sd[key].view(-1)[0] = float("inf")
    save_file(sd, str(shard))
    args = [f"--vita_path={vita_dir}", f"--vision_tower_path={vit_dir}"]
    assert main([*args, f"--output_dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert f"{key}: max |w|" in err and "1 non-finite" in err and "--allow_bad_weights=true" in err
    assert not (tmp_path / "out").exists()
    assert main([*args, f"--output_dir={tmp_path / 'out2'}", "--allow_bad_weights=true"]) == 0


def test_vision_keys_use_the_core_internvit_mapping(released):
    """VITA's InternViT names go through lerobot_vla_plugins.convert.internvl (one mapping for every InternVL)."""
    from lerobot_policy_vita_vla.convert_vita import VISION_PREFIX, convert_vision_key

    from lerobot_vla_plugins.convert.internvl import convert_remote_internvl_state_dict

    weights = released[0]
    vision = {k[len(VISION_PREFIX) :]: v for k, v in weights.items() if k.startswith(VISION_PREFIX)}
    ours = {}
    for key, value in vision.items():
        ours.update(convert_vision_key(key, value))
    core, _ = convert_remote_internvl_state_dict({"vision_model." + k: v for k, v in vision.items()})
    assert set(ours) == {"model." + k for k in core}
    assert all(torch.equal(ours["model." + k], v) for k, v in core.items())
    with pytest.raises(ValueError, match="unknown InternViT tensor 'encoder.layers.0.attn.wqkv.weight'"):
        convert_vision_key("encoder.layers.0.attn.wqkv.weight", torch.zeros(3))
