"""VLA-Adapter bench rows: the paper-size model (Prismatic DINOv2-L + SigLIP-So400m + Qwen2.5-0.5B, Pro and
original Bridge Attention heads, random weights from the config presets) and a tiny one (testing-kit backbone).

``training_mode="frozen"`` builds the backbone without LoRA adapters: that is the inference graph of a
LoRA-trained checkpoint once its adapters are merged (W + (alpha/r) B A), which is how the paper times it."""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_tools.speed import BenchCase

PAPER_FIGURE = "0.0365 s per 8-action chunk, 219.2 Hz (Table 4, H100)"


def _tiny_backbone(scratch: Path) -> dict:
    from lerobot_vla_tools.testing.prismatic import build_tiny_prismatic

    return {"vlm_path": str(build_tiny_prismatic(Path(scratch) / "tiny_prismatic"))}


def cases() -> list[BenchCase]:
    return [
        BenchCase(
            "vla_adapter (pro, tiny)",
            "vla_adapter",
            "tiny",
            overrides={"training_mode": "frozen"},
            prepare=_tiny_backbone,
        ),
        BenchCase(
            "vla_adapter (pro)",
            "vla_adapter",
            "paper",
            overrides={"training_mode": "frozen"},
            paper_figure=PAPER_FIGURE,
        ),
        BenchCase(
            "vla_adapter (original)",
            "vla_adapter",
            "paper",
            overrides={"training_mode": "frozen", "attention_variant": "original"},
            paper_figure=PAPER_FIGURE,
        ),
    ]
