"""Tiny checkpoints of Seer's parts (native transformers ``ViTMAEModel``, ``CLIPModel``, a GPT-2 trunk) and a
synthetic checkpoint in the released Seer ``.pth`` layout.

The encoders are saved with ``save_pretrained`` so that the ``seer`` policy goes through the real
``from_pretrained`` path offline; the trunk is built from its config (as Seer does), so only its sizes are
given (``TINY_SEER_TRUNK``).
"""

from __future__ import annotations

from pathlib import Path

#: Config overrides for a tiny Seer trunk (GPT-2 width/depth/heads, resampler and foresight tokens).
TINY_SEER_TRUNK = {
    "hidden_dim": 32,
    "num_layers": 2,
    "num_heads": 2,
    "num_resampler_queries": 2,
    "num_foresight_tokens": 4,
    "resampler_depth": 1,
    "resampler_heads": 2,
    "resampler_head_dim": 8,
    "image_decoder_heads": 2,
}


def build_tiny_vit_mae(
    path: str | Path, image_size: int = 224, patch_size: int = 16, hidden_size: int = 32, seed: int = 0
) -> Path:
    """A random-weight ``ViTMAEModel`` (MAE ViT layout, 2 layers) saved into ``path``.

    The default 224 px / 16 px patches give MAE ViT-B/16's 196 patch tokens at a tiny width.
    """
    import torch
    from transformers import ViTMAEConfig, ViTMAEModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = ViTMAEConfig(
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        image_size=image_size,
        patch_size=patch_size,
        decoder_hidden_size=16,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
        layer_norm_eps=1e-6,
    )
    torch.manual_seed(seed)
    ViTMAEModel(config).eval().save_pretrained(path)
    return path


def build_tiny_clip(path: str | Path, hidden_size: int = 32, projection_dim: int = 16, seed: int = 0) -> Path:
    """A random-weight ``CLIPModel`` (text and vision towers, 2 layers each) and a CLIP-style tokenizer
    (``<|startoftext|> ... <|endoftext|>``) saved into ``path``, laid out like ``openai/clip-vit-base-patch32``.
    """
    import torch
    from tokenizers import processors
    from transformers import CLIPConfig, CLIPModel

    from .tokenizers import train_byte_level_bpe

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = train_byte_level_bpe(vocab_size=400, special_tokens=("<|endoftext|>", "<|startoftext|>"))
    bos, eos = tok.convert_tokens_to_ids("<|startoftext|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)],
    )
    tok.model_max_length = 77
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "projection_dim": projection_dim,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "projection_dim": projection_dim,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
        },
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_tiny_seer_encoders(path: str | Path) -> dict:
    """Tiny MAE and CLIP checkpoints under ``path``; returns the ``seer`` config overrides that use them
    together with ``TINY_SEER_TRUNK``."""
    path = Path(path)
    mae = build_tiny_vit_mae(path / "vit_mae")
    clip = build_tiny_clip(path / "clip")
    return {"vision_encoder_name": str(mae), "text_encoder_name": str(clip), **TINY_SEER_TRUNK}


def released_seer_state_dict(
    hidden_dim: int = 32,
    num_layers: int = 2,
    num_resampler_queries: int = 2,
    num_foresight_tokens: int = 4,
    history: int = 3,
    resampler_dim: int = 768,
    resampler_depth: int = 3,
    resampler_heads: int = 8,
    resampler_head_dim: int = 64,
    text_dim: int = 512,
    gripper_width: bool = False,
    num_patches: int = 196,
    patch_size: int = 16,
    seed: int = 0,
) -> dict:
    """Random tensors named and shaped exactly as the released Seer checkpoints store them
    (``SeerAgent.state_dict()`` of OpenRobotLab/Seer ``models/seer_model.py`` with DDP's ``module.`` prefix,
    trainable parameters only: no CLIP, no MAE, no attention mask, no fixed sin-cos table).

    ``resampler_dim`` is MAE ViT-B's width (768) in the released model; tests pass their tiny MAE's width.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    h, half = hidden_dim, hidden_dim // 2
    inner = resampler_heads * resampler_head_dim

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    sd = {
        "text_projector.weight": t(h, text_dim),
        "text_projector.bias": t(h),
        "arm_state_encoder.weight": t(h, 6),
        "arm_state_encoder.bias": t(h),
        "gripper_state_encoder.weight": t(h, 2),
        "gripper_state_encoder.bias": t(h),
        "state_projector.weight": t(h, 2 * h),
        "state_projector.bias": t(h),
        # never used by the released forward; the converter drops them
        "action_pose_encoder.weight": t(h, 6),
        "action_pose_encoder.bias": t(h),
        "perceiver_resampler.latents": t(num_resampler_queries, resampler_dim),
        "perceiver_resampler.norm.weight": 1 + t(resampler_dim),
        "perceiver_resampler.norm.bias": t(resampler_dim),
        "image_primary_projector.weight": t(h, resampler_dim),
        "image_primary_projector.bias": t(h),
        "cls_token_primary_projector.weight": t(h, resampler_dim),
        "cls_token_primary_projector.bias": t(h),
        "image_wrist_projector.weight": t(h, resampler_dim),
        "image_wrist_projector.bias": t(h),
        "cls_token_wrist_projector.weight": t(h, resampler_dim),
        "cls_token_wrist_projector.bias": t(h),
        "action_pred_token": t(1, 1, 3, h),
        "obs_tokens": t(1, 1, 2 * num_foresight_tokens, h),
        "embedding_layer_norm.weight": 1 + t(h),
        "embedding_layer_norm.bias": t(h),
        "transformer_backbone_position_embedding": t(1, history, 1, h),
        "transformer_backbone.ln_f.weight": 1 + t(h),
        "transformer_backbone.ln_f.bias": t(h),
        "action_decoder.0.weight": t(half, h),
        "action_decoder.0.bias": t(half),
        "action_decoder.2.weight": t(half, half),
        "action_decoder.2.bias": t(half),
        "arm_action_decoder.0.weight": t(6, half),
        "arm_action_decoder.0.bias": t(6),
        "gripper_action_decoder.0.weight": t(1, half),
        "gripper_action_decoder.0.bias": t(1),
        "recon_state_decoder.0.weight": t(half, h),
        "recon_state_decoder.0.bias": t(half),
        "mask_token": t(1, 1, h),
        "image_decoder_obs_pred_projector.weight": t(h, h),
        "image_decoder_obs_pred_projector.bias": t(h),
        "image_decoder_norm.weight": 1 + t(h),
        "image_decoder_norm.bias": t(h),
        "image_decoder_pred.weight": t(patch_size**2 * 3, h),
        "image_decoder_pred.bias": t(patch_size**2 * 3),
    }
    if gripper_width:
        sd["gripper_state_encoder.weight"] = t(h, 2)
    for i in range(resampler_depth):
        p = f"perceiver_resampler.layers.{i}."
        sd.update(
            {
                p + "0.norm_media.weight": 1 + t(resampler_dim),
                p + "0.norm_media.bias": t(resampler_dim),
                p + "0.norm_latents.weight": 1 + t(resampler_dim),
                p + "0.norm_latents.bias": t(resampler_dim),
                p + "0.to_q.weight": t(inner, resampler_dim),
                p + "0.to_kv.weight": t(2 * inner, resampler_dim),
                p + "0.to_out.weight": t(resampler_dim, inner),
                p + "1.0.weight": 1 + t(resampler_dim),
                p + "1.0.bias": t(resampler_dim),
                p + "1.1.weight": t(4 * resampler_dim, resampler_dim),
                p + "1.3.weight": t(resampler_dim, 4 * resampler_dim),
            }
        )
    for i in range(num_layers):
        p = f"transformer_backbone.h.{i}."
        sd.update(
            {
                p + "ln_1.weight": 1 + t(h),
                p + "ln_1.bias": t(h),
                p + "attn.c_attn.weight": t(h, 3 * h),
                p + "attn.c_attn.bias": t(3 * h),
                p + "attn.c_proj.weight": t(h, h),
                p + "attn.c_proj.bias": t(h),
                p + "ln_2.weight": 1 + t(h),
                p + "ln_2.bias": t(h),
                p + "mlp.c_fc.weight": t(h, 4 * h),
                p + "mlp.c_fc.bias": t(4 * h),
                p + "mlp.c_proj.weight": t(4 * h, h),
                p + "mlp.c_proj.bias": t(h),
            }
        )
    for i in range(2):  # two timm ViT Blocks in the foresight decoder
        p = f"image_decoder.{i}."
        sd.update(
            {
                p + "norm1.weight": 1 + t(h),
                p + "norm1.bias": t(h),
                p + "attn.qkv.weight": t(3 * h, h),
                p + "attn.qkv.bias": t(3 * h),
                p + "attn.proj.weight": t(h, h),
                p + "attn.proj.bias": t(h),
                p + "norm2.weight": 1 + t(h),
                p + "norm2.bias": t(h),
                p + "mlp.fc1.weight": t(4 * h, h),
                p + "mlp.fc1.bias": t(4 * h),
                p + "mlp.fc2.weight": t(h, 4 * h),
                p + "mlp.fc2.bias": t(h),
            }
        )
    del num_patches  # the mask-token count is implied by the image size, not stored
    return {"module." + k: v for k, v in sd.items()}


def write_released_seer_checkpoint(path: str | Path, epoch: int = 12, **sizes) -> Path:
    """``torch.save`` a synthetic released-layout Seer checkpoint (``{"epoch", "model_state_dict", ...}``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"epoch": epoch, "model_state_dict": released_seer_state_dict(**sizes), "optimizer_state_dict": {}},
        path,
    )
    return path


def released_mae_state_dict(
    hidden_size: int = 32, num_layers: int = 2, patch_size: int = 16, num_patches: int = 196, seed: int = 1
) -> dict:
    """Random tensors in the layout of the official MAE ``mae_pretrain_vit_base.pth`` (``{"model": ...}``, timm ViT
    names: ``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.i.*``, ``norm``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d = hidden_size

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    sd = {
        "cls_token": t(1, 1, d),
        "pos_embed": t(1, num_patches + 1, d),
        "patch_embed.proj.weight": t(d, 3, patch_size, patch_size),
        "patch_embed.proj.bias": t(d),
        "norm.weight": 1 + t(d),
        "norm.bias": t(d),
    }
    for i in range(num_layers):
        p = f"blocks.{i}."
        sd.update(
            {
                p + "norm1.weight": 1 + t(d),
                p + "norm1.bias": t(d),
                p + "attn.qkv.weight": t(3 * d, d),
                p + "attn.qkv.bias": t(3 * d),
                p + "attn.proj.weight": t(d, d),
                p + "attn.proj.bias": t(d),
                p + "norm2.weight": 1 + t(d),
                p + "norm2.bias": t(d),
                p + "mlp.fc1.weight": t(2 * d, d),
                p + "mlp.fc1.bias": t(2 * d),
                p + "mlp.fc2.weight": t(d, 2 * d),
                p + "mlp.fc2.bias": t(d),
            }
        )
    return sd
