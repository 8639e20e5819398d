"""InternVL backbone options added for VITA-VLA (all off by default, so existing users see no change): another
input size, bare image placeholders, embeddings written at placeholder tokens inside the prompt, a projector
without LayerNorm; and the VITA-1.5 preset."""

from __future__ import annotations

import re

import pytest
import torch

from lerobot_vla_plugins.backbones.base import assemble_prefix
from lerobot_vla_plugins.backbones.internvl import InternVLBackbone


@pytest.fixture(scope="module")
def backbone(tiny_internvl):
    return InternVLBackbone.from_pretrained(str(tiny_internvl))


def test_defaults_keep_the_checkpoints_size_placeholder_and_projector(backbone):
    assert (
        backbone.image_size == 32 and backbone.num_image_tokens == backbone.model.config.image_seq_length == 4
    )
    assert backbone.image_placeholder() == "<img>" + "<IMG_CONTEXT>" * 4 + "</img>"
    assert isinstance(backbone.model.multi_modal_projector.layer_norm, torch.nn.LayerNorm)


def test_another_image_size_interpolates_to_more_image_tokens(tiny_internvl):
    """112 px with 8 px patches = 14 x 14 patches -> 7 x 7 = 49 tokens (VITA-VLA: 200 px / 14 px patches)."""
    bb = InternVLBackbone.from_pretrained(str(tiny_internvl), image_size=112)
    assert bb.num_image_tokens == 49
    assert bb.encode_images(torch.rand(2, 3, 3, 480, 480)).shape == (2, 3, 49, bb.hidden_size)
    assert bb.image_placeholder(wrap=False) == "<IMG_CONTEXT>" * 49


def test_paper_size_200_px_gives_49_tokens():
    from lerobot_vla_plugins.presets import preset_config

    assert InternVLBackbone.image_tokens_for(preset_config("VITA-MLLM/VITA-1.5"), 200) == 49
    assert InternVLBackbone.image_tokens_for(preset_config("VITA-MLLM/VITA-1.5"), 448) == 256


def test_an_image_size_the_pixel_shuffle_cannot_split_is_refused(tiny_internvl):
    with pytest.raises(ValueError, match="7 patches per side"):
        InternVLBackbone.from_pretrained(str(tiny_internvl), image_size=56)


def test_projector_without_layer_norm_is_linear_gelu_linear(tiny_internvl):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(tiny_internvl))
    model.config.projector_layer_norm = False
    bb = InternVLBackbone(model, AutoTokenizer.from_pretrained(str(tiny_internvl)))
    proj = bb.model.multi_modal_projector
    x = torch.randn(3, 128)
    assert torch.allclose(proj(x), proj.linear_2(torch.nn.functional.gelu(proj.linear_1(x))), atol=1e-6)


def test_inline_embeddings_are_written_at_their_placeholder_tokens(backbone):
    d = backbone.hidden_size
    marks = torch.randn(2, 2, d)
    prompts = [
        f"{backbone.image_placeholder()} push<|im_end|> the button<|im_end|>",
        f"{backbone.image_placeholder()} go<|im_end|><|im_end|>",
    ]
    inputs = backbone.prepare_inputs(torch.rand(2, 1, 3, 32, 32), prompts, inline={"<|im_end|>": marks})
    end_id = backbone.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for b, prompt in enumerate(prompts):
        ids = backbone.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids[0]
        assert (
            inputs.extra_positions["<|im_end|>"][b].tolist() == (ids == end_id).nonzero().squeeze(-1).tolist()
        )
        assert torch.equal(inputs.inputs_embeds[b, inputs.extra_positions["<|im_end|>"][b]], marks[b])
    # the gradient reaches the inline embeddings (VITA-VLA trains its state and action tokens this way)
    marks.requires_grad_(True)
    out = backbone.prepare_inputs(torch.rand(2, 1, 3, 32, 32), prompts, inline={"<|im_end|>": marks})
    out.inputs_embeds.sum().backward()
    assert marks.grad is not None and marks.grad.abs().sum() > 0


def test_inline_embeddings_must_match_the_placeholder_count_and_be_special_tokens(backbone):
    prompt = [f"{backbone.image_placeholder()} push<|im_end|>"]
    with pytest.raises(ValueError, match=re.escape("has 1 <|im_end|> tokens but 2 embeddings")):
        backbone.prepare_inputs(
            torch.rand(1, 1, 3, 32, 32),
            prompt,
            inline={"<|im_end|>": torch.zeros(1, 2, backbone.hidden_size)},
        )
    with pytest.raises(ValueError, match="no special token '<state>'"):
        backbone.prepare_inputs(
            torch.rand(1, 1, 3, 32, 32), prompt, inline={"<state>": torch.zeros(1, 1, backbone.hidden_size)}
        )


def test_assemble_prefix_reports_inline_positions_like_extras():
    tokens = [torch.zeros(5, 4), torch.zeros(3, 4)]
    inline = {"s": ([torch.ones(1, 4), 2 * torch.ones(1, 4)], [torch.tensor([2]), torch.tensor([0])])}
    extras = {"q": torch.full((2, 2, 4), 3.0)}
    out = assemble_prefix(
        tokens, [torch.zeros(0, 4)] * 2, [torch.zeros(0, dtype=torch.long)] * 2, extras=extras, inline=inline
    )
    assert out.extra_positions["s"].tolist() == [[2], [0]] and out.extra_positions["q"].tolist() == [
        [5, 6],
        [3, 4],
    ]
    assert out.inputs_embeds[0, 2, 0] == 1 and out.inputs_embeds[1, 0, 0] == 2
    assert out.attention_mask.sum(1).tolist() == [7, 5]


def test_vita_preset_builds_the_paper_size_backbone_without_weights():
    from lerobot_vla_tools.testing.weightless import weightless_pretrained

    with weightless_pretrained("meta"):
        bb = InternVLBackbone.from_pretrained("VITA-MLLM/VITA-1.5", dtype="bfloat16", image_size=200)
        ids = bb.tokenizer(
            "<|im_start|>user\n<IMG_CONTEXT> hi <state><action>", add_special_tokens=False
        ).input_ids
    assert bb.hidden_size == 3584 and bb.num_layers == 28 and bb.num_image_tokens == 49
    assert isinstance(bb.model.multi_modal_projector.layer_norm, torch.nn.Identity)
    # the stand-in tokenizer reports the preset's ids for special tokens, so prompts line up with the config
    assert {151644, 151665, 151666, 151667} <= set(ids)


def test_precomputed_image_tokens_give_the_same_prefix(backbone):
    images = torch.rand(2, 1, 3, 32, 32)
    prompts = [backbone.image_placeholder() + " push"] * 2
    direct = backbone.prepare_inputs(images, prompts)
    cached = backbone.prepare_inputs(backbone.encode_images(images), prompts)
    assert torch.equal(direct.inputs_embeds, cached.inputs_embeds)
