"""Tiny InternVL checkpoints (native transformers ``InternVLForConditionalGeneration``).

The layout is exactly that of ``OpenGVLab/InternVL3-1B-hf`` (InternViT + pixel-shuffle MLP
projector + Qwen2 language model), at a size that builds, saves and loads in well under a second, so
that tests and the demo go through the real ``AutoModel`` / ``AutoTokenizer`` ``from_pretrained`` path
offline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .tokenizers import train_byte_level_bpe

IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"


@dataclass(frozen=True)
class TinyInternVLSpec:
    """Sizes of a tiny InternVL. Defaults: 2-layer vision tower, 4-layer Qwen2 (the kit's standard).

    ``image_seq_length`` follows from the sizes: (image_size / patch_size)^2 * downsample_ratio^2
    tokens per image (InternVL's pixel shuffle).
    """

    image_size: int = 32
    patch_size: int = 8
    vision_hidden_size: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden_size: int = 64
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate_size: int = 128
    vocab_size: int = 512
    seed: int = 0

    @property
    def image_seq_length(self) -> int:
        patches = (self.image_size // self.patch_size) ** 2
        return patches // 4  # downsample_ratio 0.5 on both axes


def build_tiny_internvl(path: str | Path, spec: TinyInternVLSpec | None = None, **overrides) -> Path:
    """Build a random-weight InternVL with its tokenizer and ``save_pretrained`` both into ``path``.

    Args:
        path: output directory (created; existing files are overwritten).
        spec: sizes; ``TinyInternVLSpec()`` when None. ``overrides`` replace single fields.

    Returns:
        ``path`` as a ``Path``: load it with ``AutoModel.from_pretrained(path)`` and
        ``AutoTokenizer.from_pretrained(path)``.
    """
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    spec = TinyInternVLSpec(**{**asdict(spec or TinyInternVLSpec()), **overrides})
    if spec.image_size % spec.patch_size or (spec.image_size // spec.patch_size) % 2:
        raise ValueError(
            f"image_size ({spec.image_size}) must be an even multiple of patch_size ({spec.patch_size}) "
            "for InternVL's 2x2 pixel shuffle"
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    tokenizer = train_byte_level_bpe(vocab_size=spec.vocab_size)
    image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
    config = InternVLConfig(
        vision_config={
            "hidden_size": spec.vision_hidden_size,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.vision_heads,
            "intermediate_size": 2 * spec.vision_hidden_size,
            "image_size": [spec.image_size, spec.image_size],
            "patch_size": [spec.patch_size, spec.patch_size],
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": spec.text_hidden_size,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "intermediate_size": spec.text_intermediate_size,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 4096,
            "tie_word_embeddings": True,
        },
        image_token_id=image_token_id,
        image_seq_length=spec.image_seq_length,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(spec.seed)
    model = InternVLForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
