"""Tiny byte-level BPE tokenizers for tests and the offline demo.

Model weights and tokenizers cannot be downloaded on the build machines, yet every backbone must
keep its real ``from_pretrained`` path. These helpers train a real byte-level BPE (the algorithm of
the Qwen2 / GPT-2 tokenizers) on a few sentences, add the special tokens a VLM family needs and save
it with ``save_pretrained`` so that ``AutoTokenizer.from_pretrained(path)`` loads it offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# Sentences the tiny tokenizers are trained on: robot instructions (all Meta-World prompts are
# added by ``default_corpus``), chat-template fragments and the generic text the prompts contain.
_BASE_SENTENCES = (
    "What action should the robot take to pick up the red block?",
    "In: What action should the robot take to open the drawer?\nOut:",
    "User: put the bowl on the plate Assistant:",
    "Image-1: the front camera. Image-2: the wrist camera.",
    "You are a helpful robot assistant. Predict the next actions.",
    "system user assistant",
    "push the button, close the door, open the window, slide the plate, turn the dial",
    "The quick brown fox jumps over the lazy dog 0123456789.",
)

#: Special tokens shared by every tiny tokenizer: the InternVL image markers, a pad / end-of-text
#: token and the ChatML markers used by the Qwen2 chat template.
DEFAULT_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
)


def default_corpus() -> list[str]:
    """The base sentences plus every Meta-World task prompt LeRobot ships (if metaworld data is present)."""
    corpus = list(_BASE_SENTENCES)
    try:
        import json

        import lerobot.envs as lerobot_envs

        cfg = Path(lerobot_envs.__file__).parent / "metaworld_config.json"
        corpus += sorted(json.loads(cfg.read_text())["TASK_DESCRIPTIONS"].values())
    except (ImportError, OSError, KeyError, ValueError):
        pass
    return corpus


def train_byte_level_bpe(
    vocab_size: int = 512,
    special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
    corpus: Iterable[str] | None = None,
    pad_token: str = "<|endoftext|>",
    chat_template: str | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer and wrap it as a transformers fast tokenizer.

    Args:
        vocab_size: target vocabulary size including the 256 byte symbols and the special tokens.
        special_tokens: added tokens that are never split (image markers, pad, chat markers).
        corpus: training sentences; ``default_corpus()`` when None.
        pad_token: token used for padding (and as eos/bos/unk, as Qwen2 does).
        chat_template: optional Jinja chat template stored with the tokenizer.

    Returns:
        A ``PreTrainedTokenizerFast`` whose ``len()`` is at most ``vocab_size``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if pad_token not in special_tokens:
        raise ValueError(f"pad_token {pad_token!r} must be one of special_tokens {list(special_tokens)}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus) if corpus is not None else default_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=pad_token,
        eos_token=pad_token,
        unk_token=pad_token,
        padding_side="right",
        model_max_length=4096,
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast
