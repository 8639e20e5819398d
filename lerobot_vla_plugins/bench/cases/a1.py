"""A1 bench cases: the tiny test model and the paper-size model (Molmo-7B-style backbone + 271M expert)."""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_plugins.bench import BenchCase

#: tiny expert matching the tiny Molmo's KV geometry (2 KV heads x 16)
TINY_OVERRIDES = {"expert_hidden_size": 32, "expert_num_heads": 2, "expert_intermediate_size": 64, "chunk_size": 8}


def _prepare_tiny(scratch: Path) -> dict:
    from lerobot_vla_plugins.testing.molmo import build_tiny_molmo

    path = scratch / "tiny_molmo"
    if not (path / "molmo_backbone.json").is_file():
        build_tiny_molmo(path)
    return {"backbone_family": "molmo", "vlm_name": str(path)}


def cases() -> list[BenchCase]:
    return [
        BenchCase(
            name="a1 (tiny, flow matching)",
            policy_type="a1",
            size="tiny",
            overrides=dict(TINY_OVERRIDES),
            prepare=_prepare_tiny,
        ),
        BenchCase(
            name="a1 (paper, flow matching, full depth)",
            policy_type="a1",
            size="paper",
            overrides={"vlm_dtype": "bfloat16"},
            paper_figure="A1-FM, 10 steps: 1.151 s / query (CLIP 0.167 + LLM 0.612 + FM 0.366), 11130 GFLOPs (Table 3; GPU not stated)",
        ),
    ]
