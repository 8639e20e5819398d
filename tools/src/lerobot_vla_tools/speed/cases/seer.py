"""Seer (VITA-VLA's teacher).

* tiny: the testing kit's tiny MAE / CLIP checkpoints and a 2-layer 32-wide trunk, 10 steps of history.
* paper: Seer (base: 384 wide, 24 layers) and Seer-Large (1024, 24) with random weights of the published sizes
  (MAE ViT-B/16 and CLIP ViT-B/32 text from the shipped presets), 10 steps of history (CALVIN).
"""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_tools.speed import BenchCase

#: VITA-VLA Appendix A.2: "the Seer model achieves about 0.05s per inference (roughly 20 Hz)" (one-GPU workstation).
SEER_PAPER_FIGURE = "~0.05 s / step (VITA-VLA A.2, single-GPU workstation)"


def _tiny_encoders(scratch: Path) -> dict:
    from lerobot_vla_tools.testing.seer import build_tiny_seer_encoders

    return build_tiny_seer_encoders(scratch / "tiny_seer")


def cases() -> list[BenchCase]:
    return [
        BenchCase(name="seer", policy_type="seer", size="tiny", prepare=_tiny_encoders),
        BenchCase(
            name="seer (base)",
            policy_type="seer",
            size="paper",
            overrides={"size": "base"},
            paper_figure=SEER_PAPER_FIGURE,
        ),
        BenchCase(
            name="seer (large)",
            policy_type="seer",
            size="paper",
            overrides={"size": "large"},
            paper_figure=SEER_PAPER_FIGURE,
        ),
    ]
