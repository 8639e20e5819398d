"""A1 bench cases: the tiny test model, the paper-size model (Molmo-7B-style backbone + 271M expert), and A1 on
upstream evo1's backbone (the same-backbone comparison the issue asks for on CPU).

* ``a1 (evo1 backbone)``: ``backbone_family="internvl"`` with evo1's backbone, tiny (the testing kit's tiny
  InternVL, 4 layers) and paper size (InternVL3-1B-hf truncated to 14 language layers, as Evo-1), and a flow-matching
  expert in the backbone's KV geometry (paper size: 896 wide, 14 heads of 64 over its 2 KV heads, Evo-1's head
  width) so that no K/V projection is needed. Full depth: early exit needs a calibration (``bench/early_exit.py``).
"""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_tools.speed import BenchCase
from lerobot_vla_tools.speed.cases.evo1 import EVO1_VLM, TINY_OVERRIDES as EVO1_TINY, VLM_DTYPE_OVERRIDES
from lerobot_vla_tools.testing.molmo import TINY_A1_EXPERT


def _prepare_tiny(scratch: Path) -> dict:
    from lerobot_vla_tools.testing.molmo import build_tiny_molmo

    path = scratch / "tiny_molmo"
    if not (path / "molmo_backbone.json").is_file():
        build_tiny_molmo(path)
    return {"backbone_family": "molmo", "vlm_name": str(path)}


def _prepare_tiny_internvl(scratch: Path) -> dict:
    from lerobot_vla_tools.testing import build_tiny_internvl

    path = build_tiny_internvl(scratch / "tiny_internvl")
    return {
        "backbone_family": "internvl",
        "vlm_name": str(path),
        "vlm_num_layers": EVO1_TINY["vlm_num_layers"],
    }


EVO1_BACKBONE_NOTES = (
    "same backbone as upstream evo1 at this size (InternVL, 14 language layers at paper size); full depth"
)


def cases() -> list[BenchCase]:
    return [
        BenchCase(
            name="a1 (tiny, flow matching)",
            policy_type="a1",
            size="tiny",
            overrides=dict(TINY_A1_EXPERT),
            prepare=_prepare_tiny,
        ),
        BenchCase(
            name="a1 (paper, flow matching, full depth)",
            policy_type="a1",
            size="paper",
            overrides={"vlm_dtype": "bfloat16"},
            paper_figure="A1-FM, 10 steps: 1.151 s / query (CLIP 0.167 + LLM 0.612 + FM 0.366), 11130 GFLOPs (Table 3; GPU not stated)",
        ),
        BenchCase(
            name="a1 (evo1 backbone)",
            policy_type="a1",
            size="tiny",
            overrides=dict(TINY_A1_EXPERT),
            prepare=_prepare_tiny_internvl,
            dtype_overrides=VLM_DTYPE_OVERRIDES,
            notes=EVO1_BACKBONE_NOTES,
        ),
        BenchCase(
            name="a1 (evo1 backbone)",
            policy_type="a1",
            size="paper",
            overrides={
                "backbone_family": "internvl",
                "vlm_name": EVO1_VLM,
                "vlm_num_layers": 14,
                "expert_hidden_size": 896,
                "expert_num_heads": 14,
                "expert_intermediate_size": 2048,
            },
            dtype_overrides=VLM_DTYPE_OVERRIDES,
            notes=EVO1_BACKBONE_NOTES,
        ),
    ]
