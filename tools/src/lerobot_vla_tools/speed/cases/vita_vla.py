"""VITA-VLA.

* tiny: the testing kit's tiny converted-VITA InternVL (run at 56 px: 49 tokens per image, as 200 px on VITA-1.5)
  and a tiny Seer teacher whose decoder it takes, 2 steps of history; stage ``only_finetune`` (the paper's
  single-stage ablation: one ``lerobot-train`` learns actions, which is what ``lerobot-vla-demo`` runs).
* paper: VITA-1.5 (InternViT-300M + MLP + Qwen2.5-7B, bf16) from the shipped preset with random weights, 200 px
  images, 10 steps of history (CALVIN), a 1024-wide (Seer-Large) action mapper; stage ``finetune`` (the language
  model trains; no teacher is needed). Inference is the same in every stage: the VLM runs over all turns each step.
* ``vita_vla (evo1 backbone)``, paper size: VITA-VLA on upstream evo1's InternVL3-1B-hf (all 24 language layers;
  evo1 keeps 14), everything else as above: the same-backbone comparison with evo1 on CPU.
"""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_tools.speed import BenchCase
from lerobot_vla_tools.speed.cases.evo1 import EVO1_VLM, VLM_DTYPE_OVERRIDES

#: VITA-VLA Appendix A.2: "our model runs at approximately 0.15s per inference step (about 6-7 Hz)".
VITA_PAPER_FIGURE = "~0.15 s / step, 6-7 Hz (VITA-VLA A.2, single-GPU workstation, 7B)"


def _tiny_backbone_and_teacher(scratch: Path) -> dict:
    from lerobot_vla_tools.testing.vita import build_tiny_vita_with_teacher

    return build_tiny_vita_with_teacher(scratch)


def _evo1_backbone(scratch: Path) -> dict:
    """evo1's InternVL3-1B-hf as ``lerobot-vita-convert`` would leave it: the preset's full-size config and a
    tokenizer with VITA's ``<state>``/``<action>`` tokens (a tiny BPE: the prompt is a few tokens shorter than with
    Qwen2.5's), the config's ``image_token_id`` pointing at its ``<IMG_CONTEXT>``. No weights: random ones."""
    from lerobot_vla_plugins.presets import preset_config
    from lerobot_vla_tools.testing.tokenizers import DEFAULT_SPECIAL_TOKENS, train_byte_level_bpe
    from lerobot_vla_tools.testing.vita import VITA_EXTRA_TOKENS

    path = scratch / "InternVL3-1B-hf-vita"
    tokenizer = train_byte_level_bpe(
        vocab_size=384, special_tokens=[*DEFAULT_SPECIAL_TOKENS, *VITA_EXTRA_TOKENS]
    )
    config = preset_config(EVO1_VLM)
    config.image_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return {"vlm_path": str(path)}


def cases() -> list[BenchCase]:
    return [
        BenchCase(
            name="vita_vla",
            policy_type="vita_vla",
            size="tiny",
            overrides={"stage": "only_finetune"},
            prepare=_tiny_backbone_and_teacher,
        ),
        BenchCase(
            name="vita_vla (7B)",
            policy_type="vita_vla",
            size="paper",
            overrides={"stage": "finetune"},
            paper_figure=VITA_PAPER_FIGURE,
        ),
        BenchCase(
            name="vita_vla (evo1 backbone)",
            policy_type="vita_vla",
            size="paper",
            overrides={"stage": "finetune"},
            prepare=_evo1_backbone,
            dtype_overrides=VLM_DTYPE_OVERRIDES,
            notes="InternVL3-1B-hf as upstream evo1 (all 24 language layers; evo1 keeps 14), 10 steps of history; tiny tokenizer",
        ),
    ]
