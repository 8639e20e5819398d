"""The Molmo-style backbone built from native CLIP / Qwen2 parts, and the converter from Molmo's released layout.

The converter test runs an independent re-implementation of the released Molmo forward (fused att_proj and
ff_proj, linear patch embedding, attention_meanq pooling, features *added* to the <im_patch> embeddings)
directly on the original tensors and compares it with our backbone built from the converted checkpoint.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from lerobot_vla_tools.testing.molmo import (
    TinyMolmoSpec,
    build_tiny_molmo,
    molmo_original_state_dict,
    tiny_molmo_tokenizer,
)

from lerobot_vla_plugins.backbones import DecoderStack, load_backbone_class
from lerobot_vla_plugins.backbones.molmo import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    MolmoBackbone,
    resize_and_pad,
)
from lerobot_vla_plugins.convert.molmo import convert_molmo_state_dict, save_molmo_backbone
from lerobot_vla_plugins.errors import ConversionError

SPEC = TinyMolmoSpec()


@pytest.fixture(scope="module")
def tiny_molmo(tmp_path_factory):
    return build_tiny_molmo(tmp_path_factory.mktemp("molmo"))


def test_molmo_family_is_selectable_by_name():
    assert load_backbone_class("molmo") is MolmoBackbone


def test_saved_backbone_loads_through_from_pretrained_and_counts_image_tokens(tiny_molmo):
    bb = MolmoBackbone.from_pretrained(tiny_molmo)
    # 56 px / 14 -> 4x4 patches, 2x2 pooling -> 2x2 = 4 image tokens per view
    assert bb.num_image_tokens == 4 and bb.num_layers == SPEC.text_layers
    feats = bb.encode_images(torch.rand(2, 2, 3, 40, 40))
    assert feats.shape == (2, 2, 4, SPEC.text_hidden_size)


def test_prompt_layout_is_bos_then_each_view_then_text(tiny_molmo):
    bb = MolmoBackbone.from_pretrained(tiny_molmo)
    ids = bb.prompt_ids(" User: push the button Assistant:", num_views=2).tolist()
    image = [bb.im_start_id] + ([bb.im_patch_id] * 2 + [bb.im_col_id]) * 2 + [bb.im_end_id]
    text = bb.tokenizer(" User: push the button Assistant:", add_special_tokens=False).input_ids
    assert ids == [bb.bos_id] + image + image + text
    # explicit placeholders put the views where they are
    ids2 = bb.prompt_ids("A <|image|> B <|image|>", num_views=2).tolist()
    assert (
        ids2[1 : 1 + len(bb.tokenizer("A ", add_special_tokens=False).input_ids)]
        == bb.tokenizer("A ", add_special_tokens=False).input_ids
    )
    with pytest.raises(ValueError, match="1 <\\|image\\|> placeholders for 2 views"):
        bb.prompt_ids("only <|image|>", num_views=2)


def test_decoder_stack_matches_the_hf_forward_on_the_molmo_prefix(tiny_molmo):
    bb = MolmoBackbone.from_pretrained(tiny_molmo).eval()
    inputs = bb.prepare_inputs(torch.rand(2, 1, 3, 56, 56), ["push", "open the drawer please"])
    out = DecoderStack(bb.language_model).run(inputs)
    ref = bb.language_model(
        inputs_embeds=inputs.inputs_embeds,
        attention_mask=inputs.attention_mask.long(),
        position_ids=inputs.position_ids,
    ).last_hidden_state
    mask = inputs.attention_mask
    torch.testing.assert_close(out.last_hidden_state[mask], ref[mask], atol=1e-5, rtol=1e-5)


def test_resize_and_pad_keeps_aspect_and_marks_padding():
    img = torch.ones(1, 3, 20, 40)
    out, mask = resize_and_pad(img, 56)
    # scale = min(56/20, 56/40) = 1.4 -> 28 x 56, centred: rows 14..41
    assert out.shape == (1, 3, 56, 56)
    assert mask[0, :, 0].tolist() == [0.0] * 14 + [1.0] * 28 + [0.0] * 14
    assert float(out[0, :, 20, 20].min()) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- reference Molmo forward
def _ln(x, w, b, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def _rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _mha(xq, xk, w, prefix, heads):
    q = F.linear(xq, w[prefix + "wq.weight"], w[prefix + "wq.bias"])
    k = F.linear(xk, w[prefix + "wk.weight"], w[prefix + "wk.bias"])
    val = F.linear(xk, w[prefix + "wv.weight"], w[prefix + "wv.bias"])
    b, nq = q.shape[0], q.shape[1]
    hd = q.shape[-1] // heads
    q, k, val = (t.view(b, -1, heads, hd) for t in (q, k, val))
    att = torch.einsum("bqhd,bkhd->bhqk", q / math.sqrt(hd), k).softmax(-1)
    out = torch.einsum("bhqk,bkhd->bqhd", att, val).reshape(b, nq, heads * hd)
    return F.linear(out, w[prefix + "wo.weight"], w[prefix + "wo.bias"])


def reference_molmo_image_features(sd, images, spec, vit_layers):
    """Molmo's MolmoVisionBackbone on square images already at the ViT size: (N, 3, S, S) in [0, 1]."""
    v = "model.vision_backbone."
    ps, dv = spec.patch_size, spec.vision_hidden_size
    mean, std = (
        torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1),
        torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1),
    )
    x = ((images - mean) / std).permute(0, 2, 3, 1)  # (N, H, W, C) as the numpy preprocessor holds it
    n, h, w, c = x.shape
    patches = x.reshape(n, h // ps, ps, w // ps, ps, c).permute(0, 1, 3, 2, 4, 5).reshape(n, -1, ps * ps * c)
    t = patches @ sd[v + "image_vit.patch_embedding.weight"].T
    t = (
        torch.cat([sd[v + "image_vit.class_embedding"].expand(n, 1, dv), t], 1)
        + sd[v + "image_vit.positional_embedding"]
    )
    t = _ln(t, sd[v + "image_vit.pre_ln.weight"], sd[v + "image_vit.pre_ln.bias"])
    hidden = []
    for i in range(spec.vision_layers):
        p = f"{v}image_vit.transformer.resblocks.{i}."
        t = t + _mha(
            _ln(t, sd[p + "attention_norm.weight"], sd[p + "attention_norm.bias"]),
            _ln(t, sd[p + "attention_norm.weight"], sd[p + "attention_norm.bias"]),
            sd,
            p + "attention.",
            spec.vision_heads,
        )
        y = _ln(t, sd[p + "ffn_norm.weight"], sd[p + "ffn_norm.bias"])
        y = F.linear(y, sd[p + "feed_forward.w1.weight"], sd[p + "feed_forward.w1.bias"])
        y = y * torch.sigmoid(1.702 * y)  # quick_gelu
        t = t + F.linear(y, sd[p + "feed_forward.w2.weight"], sd[p + "feed_forward.w2.bias"])
        hidden.append(t)
    feats = torch.cat([hidden[layer] for layer in vit_layers], -1)[:, 1:]
    g = h // ps
    feats = (
        feats.reshape(n, g // 2, 2, g // 2, 2, -1).permute(0, 1, 3, 2, 4, 5).reshape(n * (g // 2) ** 2, 4, -1)
    )
    pooled = _mha(feats.mean(1, keepdim=True), feats, sd, v + "image_pooling_2d.", spec.vision_heads)
    pooled = pooled.reshape(n, (g // 2) ** 2, -1)
    w1, w2, w3 = (sd[f"{v}image_projector.{k}.weight"] for k in ("w1", "w2", "w3"))
    return F.linear(F.silu(F.linear(pooled, w1)) * F.linear(pooled, w3), w2)


def reference_molmo_decoder(sd, x, spec):
    """OLMoSequentialBlock x L + ln_f on embeddings x (1, N, D), causal, positions 0..N-1."""
    t = "model.transformer."
    d, heads, kvh = spec.text_hidden_size, spec.text_heads, spec.text_kv_heads
    hd = d // heads
    n = x.shape[1]
    inv = 1.0 / (1e6 ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.outer(torch.arange(n).float(), inv)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos(), emb.sin()

    def rope(z):
        z1, z2 = z[..., : hd // 2], z[..., hd // 2 :]
        return z * cos + torch.cat([-z2, z1], -1) * sin

    for i in range(spec.text_layers):
        p = f"{t}blocks.{i}."
        qkv = F.linear(
            _rms(x, sd[p + "attn_norm.weight"]), sd[p + "att_proj.weight"], sd[p + "att_proj.bias"]
        )
        q, k, v = qkv.split([d, kvh * hd, kvh * hd], -1)
        q = rope(q.view(1, n, heads, hd).transpose(1, 2))
        k = rope(k.view(1, n, kvh, hd).transpose(1, 2)).repeat_interleave(heads // kvh, 1)
        v = v.view(1, n, kvh, hd).transpose(1, 2).repeat_interleave(heads // kvh, 1)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(1, n, d)
        x = x + F.linear(att, sd[p + "attn_out.weight"])
        y = F.linear(_rms(x, sd[p + "ff_norm.weight"]), sd[p + "ff_proj.weight"])
        up, gate = y.chunk(2, -1)
        x = x + F.linear(F.silu(gate) * up, sd[p + "ff_out.weight"])
    return _rms(x, sd[t + "ln_f.weight"])


def test_converted_molmo_checkpoint_reproduces_the_released_molmo_forward(tmp_path):
    sd = molmo_original_state_dict(SPEC)
    parts = convert_molmo_state_dict(
        sd,
        num_heads=SPEC.text_heads,
        vision_heads=SPEC.vision_heads,
        vision_feature_layers=SPEC.vision_feature_layers,
    )
    out = save_molmo_backbone(parts, tiny_molmo_tokenizer(SPEC), tmp_path / "converted")
    bb = MolmoBackbone.from_pretrained(out).eval()
    images = torch.rand(1, 2, 3, 56, 56)
    prompt = " User: press the red button Assistant:"
    with torch.no_grad():
        ours_feats = bb.encode_images(images)[0]
        ref_feats = reference_molmo_image_features(sd, images[0], SPEC, list(SPEC.vision_feature_layers))
        torch.testing.assert_close(ours_feats, ref_feats, atol=1e-5, rtol=1e-4)

        inputs = bb.prepare_inputs(images, [prompt])
        ours = bb.stack.run(inputs).last_hidden_state
        ids = bb.prompt_ids(prompt, 2)
        table = torch.cat([sd["model.transformer.wte.embedding"], sd["model.transformer.wte.new_embedding"]])
        x = table[ids].clone()
        x[ids == bb.im_patch_id] += ref_feats.reshape(
            -1, ref_feats.shape[-1]
        )  # Molmo: x[image_input_idx] += features
        ref = reference_molmo_decoder(sd, x.unsqueeze(0), SPEC)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_converter_refuses_a_checkpoint_that_is_not_molmo():
    with pytest.raises(ConversionError, match="missing tensor .*class_embedding"):
        convert_molmo_state_dict({"foo": torch.zeros(1)}, num_heads=4)


def test_paper_size_backbone_builds_from_presets_on_the_meta_device():
    from lerobot_vla_tools.testing.weightless import weightless_pretrained

    with weightless_pretrained("meta"):
        bb = MolmoBackbone.from_pretrained("openai/clip-vit-large-patch14-336+Qwen/Qwen2-7B")
    assert bb.num_layers == 28 and bb.hidden_size == 3584 and bb.num_kv_heads == 4 and bb.head_dim == 128
    assert len(bb.vision.vision_model.encoder.layers) == 23  # Molmo drops CLIP ViT-L's last layer
    assert bb.num_image_tokens == 144  # 336/14 = 24 patches per side, 2x2 pooled
    n_lm = sum(p.numel() for p in bb.language_model.parameters())
    # Qwen2-7B without its LM head: 7.07B, plus 128 image-token rows
    assert 7.0e9 < n_lm < 7.2e9


def test_released_a1_view_layout_writes_every_view_into_the_first_views_slots(tmp_path):
    # A1's released MultiModalPreprocessor, given a view list and a prompt without <|image|> placeholders, points
    # every view's image_input_idx at the first view's <im_patch> tokens; the model then does
    # x[image_input_idx] += features, so (PyTorch index_put) the last view's features land in the first view's
    # slots and the other views' patch tokens keep their bare embedding.
    bb = MolmoBackbone.from_pretrained(build_tiny_molmo(tmp_path / "m")).eval()
    bb.cfg.view_slots = "released_a1"
    images = torch.rand(1, 2, 3, 56, 56)
    prompt = " User: press the red button Assistant:"
    with torch.no_grad():
        inputs = bb.prepare_inputs(images, [prompt])
        ids = bb.prompt_ids(prompt, 2)
        x = bb.language_model.embed_tokens(ids).clone()
        feats = bb.encode_images(images)[0]  # (V, N_img, D)
        slots = (ids == bb.im_patch_id).nonzero().squeeze(-1)
        n = bb.num_image_tokens
        image_input_idx = torch.cat([slots[:n], slots[:n]])  # both views -> the first view's slots
        x[image_input_idx] += feats.reshape(-1, feats.shape[-1])
    torch.testing.assert_close(inputs.inputs_embeds[0], x)
    bare = bb.language_model.embed_tokens(ids)[slots[n:]]
    assert torch.equal(inputs.inputs_embeds[0, slots[n:]], bare)  # the second view's tokens carry no features
    bb.cfg.view_slots = "own"
    with torch.no_grad():
        own = bb.prepare_inputs(images, [prompt]).inputs_embeds[0]
    assert not torch.allclose(own[slots[n:]], bare)  # our layout: each view in its own slots


def test_molmo_converter_refuses_non_finite_weights_unless_allowed(tmp_path, capsys):
    import json

    from lerobot_vla_tools.testing.molmo import molmo_original_config
    from safetensors.torch import save_file

    from lerobot_vla_plugins.convert.molmo import main

    src = tmp_path / "molmo"
    src.mkdir()
    spec = TinyMolmoSpec(vision_layers=9, vision_feature_layers=(-2, -9))  # Molmo-7B-D's feature layers
    sd = molmo_original_state_dict(spec)
    sd["model.transformer.blocks.1.att_proj.weight"][0, 0] = float("nan")
    save_file(sd, str(src / "model.safetensors"))
    (src / "config.json").write_text(json.dumps(molmo_original_config(spec)))
    tiny_molmo_tokenizer(spec).save_pretrained(src)
    args = [f"--input={src}", f"--vision_heads={spec.vision_heads}"]
    assert main([*args, f"--output={tmp_path / 'refused'}"]) == 2
    out = capsys.readouterr()
    assert "model.transformer" in out.out  # per-module summary
    assert "blocks.1.att_proj.weight" in out.err and "1 non-finite" in out.err
    assert not (tmp_path / "refused").exists()
    assert main([*args, f"--output={tmp_path / 'allowed'}", "--allow_bad_weights=true"]) == 0
    assert (tmp_path / "allowed" / "molmo_backbone.json").is_file()
