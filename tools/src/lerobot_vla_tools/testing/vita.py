"""Tiny VITA-1.5-shaped checkpoints for the ``vita_vla`` tests.

* ``build_tiny_vita``: a native-layout InternVL (what ``lerobot-vita-convert`` produces) whose tokenizer has the
  ``<state>`` / ``<action>`` placeholders and whose projector has no LayerNorm, like converted VITA-1.5.
* ``write_released_vita15``: a synthetic checkpoint in the *released* VITA-1.5 layout (``VITAQwen2ForCausalLM``
  keys, LLaVA-style ``model.vision_tower.vision_tower.*`` InternViT, ``model.mm_projector`` Linear-GELU-Linear,
  an audio encoder, ``model_type: vita-Qwen2``) with an InternViT config, for the converter's tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from lerobot_policy_vita_vla.convert_vita import INTERNVIT_300M_448PX

from .internvl import build_tiny_internvl
from .tokenizers import train_byte_level_bpe

VITA_EXTRA_TOKENS = ("<state>", "<action>")


def build_tiny_vita(path: str | Path, image_size: int = 32, patch_size: int = 4, **overrides) -> Path:
    """A tiny InternVL in converted-VITA-1.5 form, saved into ``path``.

    Built at 32 px with 4 px patches (8x8 patches -> 16 tokens) so that running it at 56 px (``vlm_image_size``)
    interpolates the position embeddings to 14x14 patches -> 49 tokens per image, as VITA-VLA runs VITA-1.5's
    448 px InternViT at 200 px.
    """
    import torch
    from transformers import AutoTokenizer, InternVLForConditionalGeneration

    path = Path(path)
    build_tiny_internvl(path, image_size=image_size, patch_size=patch_size, **overrides)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_tokens(list(VITA_EXTRA_TOKENS), special_tokens=True)
    model = InternVLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    model.resize_token_embeddings(len(tokenizer))
    model.config.projector_layer_norm = False  # VITA-1.5's mlp2x_gelu projector
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_released_vita15(
    path: str | Path,
    vision_width: int = 32,
    vision_layers: int = 2,
    vision_heads: int = 2,
    image_size: int = 32,
    patch_size: int = 4,
    text_width: int = 64,
    text_layers: int = 2,
    text_heads: int = 4,
    text_kv_heads: int = 2,
    text_intermediate: int = 128,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write a synthetic released-layout VITA-1.5 checkpoint (``path``) and an InternViT checkpoint directory holding
    only the vision config (``path/../internvit``), as ``OpenGVLab/InternViT-300M-448px`` ships it.

    Returns:
        (vita_dir, internvit_dir)
    """
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vit_dir = path.parent / "internvit"
    vit_dir.mkdir(parents=True, exist_ok=True)
    tok = train_byte_level_bpe(vocab_size=512, special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    tok.save_pretrained(path)
    vocab = len(tok) + 8  # spare rows, as Qwen2.5's 152064-row embedding holds 151665 tokens
    mm_hidden = vision_width * 4
    (path / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["VITAQwen2ForCausalLM"],
                "model_type": "vita-Qwen2",
                "hidden_size": text_width,
                "intermediate_size": text_intermediate,
                "num_hidden_layers": text_layers,
                "num_attention_heads": text_heads,
                "num_key_value_heads": text_kv_heads,
                "vocab_size": vocab,
                "max_position_embeddings": 4096,
                "rope_theta": 1000000.0,
                "rms_norm_eps": 1e-6,
                "hidden_act": "silu",
                "tie_word_embeddings": False,
                "mm_vision_tower": "OpenGVLab/InternViT-300M-448px",
                "mm_projector_type": "mlp2x_gelu",
                "mm_hidden_size": mm_hidden,
                "mm_audio_encoder": "VITA-MLLM/VITA-1.5_AudioEnc",
                "torch_dtype": "float32",
            },
            indent=2,
        )
    )
    (vit_dir / "config.json").write_text(
        json.dumps(
            {  # the published InternViT-300M config at tiny size
                "architectures": ["InternVisionModel"],
                "model_type": "intern_vit_6b",
                **INTERNVIT_300M_448PX,
                "hidden_size": vision_width,
                "intermediate_size": 2 * vision_width,
                "num_attention_heads": vision_heads,
                "num_hidden_layers": vision_layers,
                "image_size": image_size,
                "patch_size": patch_size,
            },
            indent=2,
        )
    )
    g = torch.Generator().manual_seed(seed)

    def t(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    v, grid = vision_width, image_size // patch_size
    sd = {
        "model.vision_tower.vision_tower.embeddings.class_embedding": t(1, 1, v),
        "model.vision_tower.vision_tower.embeddings.patch_embedding.weight": t(v, 3, patch_size, patch_size),
        "model.vision_tower.vision_tower.embeddings.patch_embedding.bias": t(v),
        "model.vision_tower.vision_tower.embeddings.position_embedding": t(1, grid * grid + 1, v),
        "model.mm_projector.0.weight": t(text_width, mm_hidden),
        "model.mm_projector.0.bias": t(text_width),
        "model.mm_projector.2.weight": t(text_width, text_width),
        "model.mm_projector.2.bias": t(text_width),
        "model.audio_encoder.encoder.weight": t(4, 4),
        "model.embed_tokens.weight": t(vocab, text_width),
        "model.norm.weight": 1 + t(text_width),
        "lm_head.weight": t(vocab, text_width),
    }
    for i in range(vision_layers):
        p = f"model.vision_tower.vision_tower.encoder.layers.{i}."
        sd.update(
            {
                p + "attn.qkv.weight": t(3 * v, v),
                p + "attn.qkv.bias": t(3 * v),
                p + "attn.proj.weight": t(v, v),
                p + "attn.proj.bias": t(v),
                p + "ls1": 1 + t(v),
                p + "ls2": 1 + t(v),
                p + "norm1.weight": 1 + t(v),
                p + "norm1.bias": t(v),
                p + "norm2.weight": 1 + t(v),
                p + "norm2.bias": t(v),
                p + "mlp.fc1.weight": t(2 * v, v),
                p + "mlp.fc1.bias": t(2 * v),
                p + "mlp.fc2.weight": t(v, 2 * v),
                p + "mlp.fc2.bias": t(v),
            }
        )
    head = text_width // text_heads
    for i in range(text_layers):
        p = f"model.layers.{i}."
        sd.update(
            {
                p + "self_attn.q_proj.weight": t(text_width, text_width),
                p + "self_attn.q_proj.bias": t(text_width),
                p + "self_attn.k_proj.weight": t(text_kv_heads * head, text_width),
                p + "self_attn.k_proj.bias": t(text_kv_heads * head),
                p + "self_attn.v_proj.weight": t(text_kv_heads * head, text_width),
                p + "self_attn.v_proj.bias": t(text_kv_heads * head),
                p + "self_attn.o_proj.weight": t(text_width, text_width),
                p + "mlp.gate_proj.weight": t(text_intermediate, text_width),
                p + "mlp.up_proj.weight": t(text_intermediate, text_width),
                p + "mlp.down_proj.weight": t(text_width, text_intermediate),
                p + "input_layernorm.weight": 1 + t(text_width),
                p + "post_attention_layernorm.weight": 1 + t(text_width),
            }
        )
    # two shards with an index, as the 7B release is stored
    keys = sorted(sd)
    half = len(keys) // 2
    shards = {
        "model-00001-of-00002.safetensors": keys[:half],
        "model-00002-of-00002.safetensors": keys[half:],
    }
    weight_map = {}
    for name, ks in shards.items():
        save_file({k: sd[k].contiguous() for k in ks}, str(path / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(ks, name))
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path, vit_dir


def build_tiny_vita_with_teacher(scratch: str | Path, history: int = 2) -> dict:
    """A tiny converted-VITA backbone and a tiny, randomly initialised ``seer`` teacher (Meta-World features) under
    ``scratch``; returns the ``vita_vla`` config overrides that use them (stage-1 ready)."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature

    from .seer import build_tiny_seer_encoders

    scratch = Path(scratch)
    vita = build_tiny_vita(scratch / "tiny_vita")
    from lerobot_policy_seer.configuration_seer import SeerConfig
    from lerobot_policy_seer.modeling_seer import SeerPolicy
    from lerobot_policy_seer.processor_seer import make_seer_pre_post_processors

    torch.manual_seed(0)
    cfg = SeerConfig(
        device="cpu",
        history_length=history,
        push_to_hub=False,
        **build_tiny_seer_encoders(scratch / "tiny_seer"),
    )
    cfg.input_features = {
        "observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 480)),
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(4,)),
    }
    cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(4,))}
    teacher = scratch / "tiny_seer_teacher"
    SeerPolicy(cfg).save_pretrained(teacher)
    # a LeRobot-trained teacher carries its statistics (stage 1 refuses one that normalises without them)
    stats = {
        key: {"mean": torch.zeros(4), "std": torch.ones(4), "min": -torch.ones(4), "max": torch.ones(4)}
        for key in ("observation.state", "action")
    }
    for pipeline in make_seer_pre_post_processors(cfg, dataset_stats=stats):
        pipeline.save_pretrained(teacher)
    return {
        "vlm_path": str(vita),
        "vlm_dtype": "float32",
        "vlm_image_size": 56,
        "history_length": history,
        "teacher_path": str(teacher),
    }
