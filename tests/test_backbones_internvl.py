"""The testing kit's tiny InternVL and the shared backbone interface (DecoderStack, InternVLBackbone)."""

from __future__ import annotations

import pytest
import torch

from lerobot_vla_plugins.backbones import DecoderStack, load_backbone_class
from lerobot_vla_plugins.backbones.internvl import IMG_CONTEXT_TOKEN, InternVLBackbone


@pytest.fixture(scope="module")
def backbone(tiny_internvl):
    return InternVLBackbone.from_pretrained(str(tiny_internvl)).eval()


def _prompts(bb, texts):
    return [f"Image-1: {bb.image_placeholder()}\nImage-2: {bb.image_placeholder()}\n{t}" for t in texts]


def test_tiny_internvl_loads_through_auto_classes(tiny_internvl):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_internvl)
    tokenizer = AutoTokenizer.from_pretrained(tiny_internvl)
    assert type(model).__name__ == "InternVLModel"
    assert (
        model.config.vision_config.num_hidden_layers == 2 and model.config.text_config.num_hidden_layers == 4
    )
    assert tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN) == model.config.image_token_id
    ids = tokenizer("<img><IMG_CONTEXT></img>", add_special_tokens=False).input_ids
    assert len(ids) == 3  # the image markers are never split


def test_family_registry_names_the_class_and_rejects_unknown_families():
    assert load_backbone_class("internvl") is InternVLBackbone
    with pytest.raises(ValueError, match="backbone_family: unknown family 'llava'"):
        load_backbone_class("llava")


def test_decoder_stack_equals_the_transformers_forward_at_every_layer(backbone):
    images = torch.rand(2, 2, 3, 40, 40)
    out = backbone(images, _prompts(backbone, ["push the button", "open the drawer please"]), collect_kv=True)
    ref = backbone.decoder(
        inputs_embeds=out.inputs.inputs_embeds,
        attention_mask=out.inputs.attention_mask.long(),
        position_ids=out.inputs.position_ids,
        output_hidden_states=True,
    )
    assert len(out.hidden_states) == len(ref.hidden_states) == 5  # embeddings + 4 layers
    for ours, theirs in zip(out.hidden_states, ref.hidden_states, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_image_splicing_equals_internvl_models_own_forward(backbone):
    images = torch.rand(1, 2, 3, 32, 32)  # already at the checkpoint size: no resize
    prompt = _prompts(backbone, ["push the button"])
    ids = backbone.tokenizer(prompt[0], add_special_tokens=False, return_tensors="pt").input_ids
    pixels = (images[0] - backbone._mean) / backbone._std
    with torch.no_grad():
        ref = backbone.model(input_ids=ids, pixel_values=pixels).last_hidden_state
        ours = backbone(images, prompt).last_hidden_state
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_per_layer_keys_and_values_have_the_decoders_geometry(backbone):
    out = backbone(torch.rand(2, 2, 3, 32, 32), _prompts(backbone, ["a", "bb"]), collect_kv=True)
    assert len(out.key_values) == backbone.num_layers
    keys, values = out.key_values[0]
    assert keys.shape == values.shape == (2, backbone.num_kv_heads, out.inputs.seq_len, backbone.head_dim)


def test_query_tokens_are_appended_after_each_prompt_and_gathered_per_layer(backbone):
    queries = torch.randn(2, 3, backbone.hidden_size)
    out = backbone(
        torch.rand(2, 2, 3, 32, 32),
        _prompts(backbone, ["short", "a much longer instruction text"]),
        extras={"query": queries},
    )
    pos = out.inputs.extra_positions["query"]
    lengths = out.inputs.attention_mask.sum(1)
    assert torch.equal(pos[:, -1], lengths - 1)  # queries end each (right-padded) sequence
    torch.testing.assert_close(out.gather(0, "query"), queries)  # layer 0 = embeddings
    assert out.gather(2, "query").shape == (2, 3, backbone.hidden_size)
    assert out.gather(1, "image").shape == (2, 2 * backbone.num_image_tokens, backbone.hidden_size)


def test_early_exit_stops_computing_after_the_requested_layer(backbone):
    inputs = backbone.prepare_inputs(torch.rand(1, 2, 3, 32, 32), _prompts(backbone, ["x"]))
    calls = []
    hooks = [
        layer.register_forward_hook(lambda *_, i=i: calls.append(i))
        for i, layer in enumerate(backbone.decoder.layers)
    ]
    try:
        for i, _hidden, _ in DecoderStack(backbone.decoder).iter_layers(inputs):
            if i == 1:
                break
    finally:
        for h in hooks:
            h.remove()
    assert calls == [0, 1]


def test_masked_views_are_hidden_from_attention(backbone):
    images = torch.rand(1, 2, 3, 32, 32)
    prompt = _prompts(backbone, ["x"])
    inputs = backbone.prepare_inputs(images, prompt, view_mask=torch.tensor([[True, False]]))
    n = backbone.num_image_tokens
    assert inputs.attention_mask[0, inputs.image_positions[0, :n]].all()
    assert not inputs.attention_mask[0, inputs.image_positions[0, n:]].any()
    # the hidden view's pixels no longer influence the text tokens
    other = images.clone()
    other[:, 1] = torch.rand(1, 3, 32, 32)
    a = backbone.stack.run(inputs).last_hidden_state
    b = backbone.stack.run(
        backbone.prepare_inputs(other, prompt, view_mask=torch.tensor([[True, False]]))
    ).last_hidden_state
    text = inputs.attention_mask[0]
    torch.testing.assert_close(a[0, text], b[0, text])


def test_truncation_keeps_the_first_layers(tiny_internvl):
    bb = InternVLBackbone.from_pretrained(str(tiny_internvl), num_layers=2)
    assert bb.num_layers == 2 and bb.decoder.config.num_hidden_layers == 2
    with pytest.raises(ValueError, match=r"num_layers must be in \[1, 2\]"):
        bb.truncate_layers(3)


def test_a_prompt_without_one_placeholder_per_view_is_rejected(backbone):
    with pytest.raises(ValueError, match="prompt 0 has .* image tokens but the batch has 2 views"):
        backbone.prepare_inputs(
            torch.rand(1, 2, 3, 32, 32), [f"Image-1: {backbone.image_placeholder()} only one"]
        )


def test_gradient_checkpointing_gives_the_same_outputs_kv_and_gradients(tiny_internvl):
    """Checkpointed layers (recomputed in backward, A1/VITA-VLA's 7B recipes) equal the plain run: hidden states,
    the per-layer keys/values that transformers' own checkpointing would drop, and every decoder gradient."""
    torch.manual_seed(0)
    bb = InternVLBackbone.from_pretrained(str(tiny_internvl)).train()
    images = torch.rand(2, 2, 3, 32, 32)

    def loss_and_grads(checkpointing: bool):
        bb.zero_grad()
        bb.gradient_checkpointing = checkpointing
        inputs = bb.prepare_inputs(images, _prompts(bb, ["push", "open the drawer"]))
        out = bb.stack.run(inputs, collect_kv=True)
        assert len(out.key_values) == bb.num_layers
        loss = out.hidden_states[-1].square().mean() + sum(
            k.mean() + v.square().mean() for k, v in out.key_values
        )
        loss.backward()
        grads = {n: p.grad.clone() for n, p in bb.decoder.named_parameters() if p.grad is not None}
        return out, grads

    calls, mlp0_forward = [], bb.decoder.layers[0].mlp.forward
    bb.decoder.layers[0].mlp.forward = lambda *a, **k: calls.append(1) or mlp0_forward(*a, **k)
    plain, plain_grads = loss_and_grads(False)
    assert len(calls) == 1
    ckpt, ckpt_grads = loss_and_grads(True)
    assert len(calls) == 3  # forward + the recomputation in backward: activations were not kept
    for a, b in zip(plain.hidden_states, ckpt.hidden_states, strict=True):
        torch.testing.assert_close(a, b)
    for (k1, v1), (k2, v2) in zip(plain.key_values, ckpt.key_values, strict=True):
        torch.testing.assert_close(k1, k2)
        torch.testing.assert_close(v1, v2)
    assert plain_grads.keys() == ckpt_grads.keys() and any("layers.3." in n for n in ckpt_grads)
    for name in plain_grads:
        torch.testing.assert_close(plain_grads[name], ckpt_grads[name], msg=name)
