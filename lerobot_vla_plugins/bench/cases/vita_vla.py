"""VITA-VLA.

* tiny: the testing kit's tiny converted-VITA InternVL (run at 56 px: 49 tokens per image, as 200 px on VITA-1.5)
  and a tiny Seer teacher whose decoder it takes, 2 steps of history; stage ``only_finetune`` (the paper's
  single-stage ablation: one ``lerobot-train`` learns actions, which is what ``lerobot-vla-demo`` runs).
* paper: VITA-1.5 (InternViT-300M + MLP + Qwen2.5-7B, bf16) from the shipped preset with random weights, 200 px
  images, 10 steps of history (CALVIN), a 1024-wide (Seer-Large) action mapper; stage ``finetune`` (the language
  model trains; no teacher is needed). Inference is the same in every stage: the VLM runs over all turns each step.
"""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_plugins.bench import BenchCase

#: VITA-VLA Appendix A.2: "our model runs at approximately 0.15s per inference step (about 6-7 Hz)".
VITA_PAPER_FIGURE = "~0.15 s / step, 6-7 Hz (VITA-VLA A.2, single-GPU workstation, 7B)"


def _tiny_backbone_and_teacher(scratch: Path) -> dict:
    from lerobot_vla_plugins.testing.vita import build_tiny_vita_with_teacher

    return build_tiny_vita_with_teacher(scratch)


def cases() -> list[BenchCase]:
    return [
        BenchCase(name="vita_vla", policy_type="vita_vla", size="tiny", overrides={"stage": "only_finetune"}, prepare=_tiny_backbone_and_teacher),
        BenchCase(name="vita_vla (7B)", policy_type="vita_vla", size="paper", overrides={"stage": "finetune"}, paper_figure=VITA_PAPER_FIGURE),
    ]
