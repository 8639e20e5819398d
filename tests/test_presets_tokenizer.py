"""The preset tokenizer of ``weightless_pretrained`` emits the preset's special-token ids, so a full-size model built
with random weights on a real device (the benchmarks' paper-size rows) finds its image placeholders."""

from __future__ import annotations

import torch
from lerobot_vla_tools.testing.weightless import weightless_pretrained
from transformers import AutoTokenizer

from lerobot_vla_plugins.presets import load_preset


def test_special_tokens_get_the_preset_ids_in_input_ids_and_attributes():
    ids = load_preset("OpenGVLab/InternVL3-1B-hf")["tokenizer"]["special_token_ids"]
    with weightless_pretrained("meta"):
        tok = AutoTokenizer.from_pretrained("OpenGVLab/InternVL3-1B-hf")
    batch = tok(
        ["<img><IMG_CONTEXT><IMG_CONTEXT></img>\npress the button", "push"], return_tensors="pt", padding=True
    )
    first = batch["input_ids"][0].tolist()
    assert first[:4] == [ids["<img>"], ids["<IMG_CONTEXT>"], ids["<IMG_CONTEXT>"], ids["</img>"]]
    assert all(i < 1000 for i in first[4:]), "ordinary text keeps small ids, valid in any vocabulary"
    assert (
        tok.pad_token_id == ids["<|endoftext|>"] and batch["input_ids"][1, -1].item() == ids["<|endoftext|>"]
    )
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == ids["<IMG_CONTEXT>"]
    assert tok("x <IMG_CONTEXT>")["input_ids"][-1] == ids["<IMG_CONTEXT>"]  # plain lists too
    assert isinstance(batch["input_ids"], torch.Tensor)
