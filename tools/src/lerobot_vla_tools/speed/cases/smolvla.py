"""Upstream LeRobot ``smolvla``, for reference (Evo-1's Table 2 compares against it: 0.45B, 12.7 Hz, 2.0 GB).

smolvla reads ``AutoProcessor.from_pretrained(vlm_model_name)`` and, with ``load_vlm_weights=False`` (its
default), builds the VLM from ``AutoConfig.from_pretrained(vlm_model_name)``. Neither can be downloaded here, so
both cases point ``vlm_model_name`` at a local directory written by ``prepare``:

* tiny: the testing kit's tiny SmolVLM (``testing/smolvlm.py``) and 4 VLM layers;
* paper: the published SmolVLM2-500M-Video-Instruct ``config.json`` (shipped preset) with SmolVLM processor files
  around a tiny tokenizer (the tokenizer only changes how many text tokens the prompt has), random weights, and
  smolvla's own defaults (16 of 32 VLM layers, expert width 0.75, chunk 50, 10 flow steps).
"""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_tools.speed import BenchCase

SMOLVLM_HUB_ID = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"

TINY_OVERRIDES = {
    "num_vlm_layers": 4,
    "resize_imgs_with_padding": (32, 32),
    "chunk_size": 8,
    "n_action_steps": 8,
}  # smolvla's own 10 flow-matching steps, as in the paper row


def _tiny_backbone(scratch: Path) -> dict:
    from lerobot_vla_tools.testing.smolvlm import build_tiny_smolvlm

    return {"vlm_model_name": str(build_tiny_smolvlm(scratch / "tiny_smolvlm"))}


def _paper_backbone(scratch: Path) -> dict:
    """The preset's full-size config plus processor files: everything smolvla reads, no weights."""
    from lerobot_vla_plugins.presets import preset_config
    from lerobot_vla_tools.testing.smolvlm import write_smolvlm_processor

    path = scratch / "SmolVLM2-500M-Video-Instruct"
    config = preset_config(SMOLVLM_HUB_ID)
    config.save_pretrained(path)
    vision = config.vision_config
    write_smolvlm_processor(
        path,
        image_size=vision.image_size,
        image_seq_len=(vision.image_size // vision.patch_size) ** 2 // config.scale_factor**2,
    )
    return {"vlm_model_name": str(path)}


def cases() -> list[BenchCase]:
    return [
        BenchCase(
            name="smolvla",
            policy_type="smolvla",
            size="tiny",
            overrides=TINY_OVERRIDES,
            prepare=_tiny_backbone,
        ),
        BenchCase(
            name="smolvla",
            policy_type="smolvla",
            size="paper",
            prepare=_paper_backbone,
            paper_figure="12.7 Hz, 2.0 GB (RTX 4090d, Evo-1 Table 2)",
            notes="random weights of the published sizes; tiny tokenizer (prompt length differs slightly)",
        ),
    ]
