"""Tiny SmolVLM checkpoints (native transformers ``SmolVLMForConditionalGeneration``) with their processor.

LeRobot's ``smolvla`` loads ``AutoProcessor.from_pretrained(vlm_model_name)`` (a ``SmolVLMProcessor``: image
processor + tokenizer whose ``fake_image_token`` / ``global_image_token`` ids it reads) and, with
``load_vlm_weights=False`` (its default), builds the VLM from ``AutoConfig.from_pretrained(vlm_model_name)``.
Neither can be downloaded here, so:

* ``build_tiny_smolvlm(path)`` writes a tiny real SmolVLM (SigLIP-style vision tower, pixel-shuffle connector,
  Llama text model) with its processor, for tests and the tiny benchmark row;
* ``write_smolvlm_processor(path)`` writes only the processor files (tiny byte-level BPE tokenizer with
  SmolVLM's special tokens), next to a full-size ``config.json`` for the paper-size benchmark row.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .tokenizers import train_byte_level_bpe

#: SmolVLM's image markers (names as in the SmolVLM2 tokenizer's special tokens) and its end-of-turn token.
SMOLVLM_SPECIAL_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}


@dataclass(frozen=True)
class TinySmolVLMSpec:
    """Sizes of a tiny SmolVLM: 2-layer vision tower (32x32 images, 8x8 patches), 4-layer Llama.

    Tokens per image: (image_size / patch_size)^2 / scale_factor^2 = 4.
    """

    image_size: int = 32
    patch_size: int = 8
    scale_factor: int = 2
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


def _tokenizer(vocab_size: int, scratch: Path):
    """A tiny BPE tokenizer whose named special tokens are SmolVLM's (``tok.fake_image_token_id``, ...)."""
    from transformers import AutoTokenizer

    tok = train_byte_level_bpe(
        vocab_size=vocab_size,
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", *SMOLVLM_SPECIAL_TOKENS.values()),
    )
    tok.save_pretrained(scratch)
    # Named extra special tokens become attributes ``<name>`` / ``<name>_id`` and are saved with the tokenizer.
    return AutoTokenizer.from_pretrained(scratch, extra_special_tokens=dict(SMOLVLM_SPECIAL_TOKENS))


def write_smolvlm_processor(
    path: str | Path, image_size: int = 512, image_seq_len: int = 64, vocab_size: int = 512
) -> Path:
    """Save a ``SmolVLMProcessor`` (tiny tokenizer, SmolVLM image processor) into ``path``.

    Args:
        image_size: the vision tower's input size (``max_image_size`` of the image processor).
        image_seq_len: tokens per image after the connector ((image_size / patch)^2 / scale_factor^2).
    """
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    image_processor = SmolVLMImageProcessor(
        do_resize=True,
        size={"longest_edge": image_size},
        do_image_splitting=False,
        max_image_size={"longest_edge": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _tokenizer(vocab_size, Path(tmp))
    video_processor = SmolVLMVideoProcessor(
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_len=image_seq_len,
    )
    processor.save_pretrained(path)
    return path


def build_tiny_smolvlm(path: str | Path, spec: TinySmolVLMSpec | None = None, **overrides) -> Path:
    """Build a random-weight SmolVLM and its processor and ``save_pretrained`` both into ``path``.

    Returns:
        ``path``: load it with ``AutoModelForImageTextToText`` / ``AutoConfig`` / ``AutoProcessor``.
    """
    import torch
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    spec = TinySmolVLMSpec(**{**asdict(spec or TinySmolVLMSpec()), **overrides})
    if spec.image_size % (spec.patch_size * spec.scale_factor):
        raise ValueError(
            f"image_size ({spec.image_size}) must be a multiple of patch_size * scale_factor "
            f"({spec.patch_size} * {spec.scale_factor}) for SmolVLM's pixel shuffle"
        )
    path = Path(path)
    image_seq_len = (spec.image_size // spec.patch_size) ** 2 // spec.scale_factor**2
    write_smolvlm_processor(path, spec.image_size, image_seq_len, spec.vocab_size)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    config = SmolVLMConfig(
        vision_config={
            "hidden_size": spec.vision_hidden_size,
            "intermediate_size": 2 * spec.vision_hidden_size,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.vision_heads,
            "image_size": spec.image_size,
            "patch_size": spec.patch_size,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": spec.text_hidden_size,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "head_dim": spec.text_hidden_size // spec.text_heads,
            "intermediate_size": spec.text_intermediate_size,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 2048,
        },
        scale_factor=spec.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids(SMOLVLM_SPECIAL_TOKENS["image_token"]),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    SmolVLMForConditionalGeneration(config).eval().save_pretrained(path)
    return path
