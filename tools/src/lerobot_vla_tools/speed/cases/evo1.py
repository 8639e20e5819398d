"""Upstream LeRobot ``evo1`` (the reference every policy of ours is compared with).

* tiny: the testing kit's tiny InternVL (2-layer vision tower, 4-layer Qwen2, 32x32 images) and a 2-layer head.
* paper: Evo-1's published size (InternVL3-1B-hf truncated to 14 language layers, 8-layer 896-wide head,
  horizon 50, 24-D padding; 0.77B parameters), built from the shipped config preset with random weights.
  ``num_inference_timesteps`` stays at LeRobot's default (32); the official server uses 50.
"""

from __future__ import annotations

from pathlib import Path

from lerobot_vla_tools.speed import BenchCase

#: Tiny sizes of the core tests (tests/test_evo1_end_to_end.py), with LeRobot's default 32 denoising steps as in
#: the paper row: every tiny row runs its policy's own number of steps (A1 10, smolvla 10), as at paper size.
TINY_OVERRIDES = {
    "image_resolution": (32, 32),
    "embed_dim": 64,
    "hidden_dim": 128,
    "state_hidden_dim": 128,
    "num_heads": 4,
    "num_layers": 2,
    "chunk_size": 8,
    "n_action_steps": 8,
    "vlm_num_layers": 4,
    "use_flash_attn": False,
    "max_text_length": 256,
    "enable_gradient_checkpointing": False,
}

#: evo1 keeps its VLM in ``vlm_dtype`` and wraps CUDA forwards in bf16 autocast when ``use_amp``.
DTYPE_OVERRIDES = {
    "float32": {"vlm_dtype": "float32", "use_amp": False},
    "bfloat16": {"vlm_dtype": "bfloat16", "use_amp": True},
}

#: evo1's paper-size backbone and the overrides of every paper-size evo1 row
EVO1_VLM = "OpenGVLab/InternVL3-1B-hf"
PAPER_OVERRIDES = {"vlm_model_name": EVO1_VLM, "use_flash_attn": False}
#: the VLM precision of the same-backbone rows of our policies (their ``vlm_dtype``), as evo1's above
VLM_DTYPE_OVERRIDES = {"float32": {"vlm_dtype": "float32"}, "bfloat16": {"vlm_dtype": "bfloat16"}}

EVO1_PAPER_FIGURE = "16.4 Hz, 2.3 GB (RTX 4090d, Evo-1 Table 2)"


def _tiny_backbone(scratch: Path) -> dict:
    from lerobot_vla_tools.testing import build_tiny_internvl

    return {"vlm_model_name": str(build_tiny_internvl(scratch / "tiny_internvl"))}


def _accelerate(policy):
    from lerobot_vla_plugins.speed.evo1 import accelerate_evo1

    accelerate_evo1(policy)


ACCELERATED_NOTES = (
    "upstream evo1 + lerobot_vla_plugins.speed.evo1.accelerate_evo1 (context K/V once per query, vision tower on "
    "present cameras only, SDPA attention); same outputs as evo1 (tests/test_speed_evo1.py)"
)


def cases() -> list[BenchCase]:
    return [
        BenchCase(
            name="evo1",
            policy_type="evo1",
            size="tiny",
            overrides=TINY_OVERRIDES,
            prepare=_tiny_backbone,
            dtype_overrides=DTYPE_OVERRIDES,
        ),
        BenchCase(
            name="evo1",
            policy_type="evo1",
            size="paper",
            overrides=PAPER_OVERRIDES,
            dtype_overrides=DTYPE_OVERRIDES,
            paper_figure=EVO1_PAPER_FIGURE,
            notes="random weights of the published sizes; 32 denoising steps (LeRobot default; official server 50)",
        ),
        BenchCase(
            name="evo1 (stage 2)",
            policy_type="evo1",
            size="paper",
            overrides={**PAPER_OVERRIDES, "training_stage": "stage2"},
            dtype_overrides=DTYPE_OVERRIDES,
            notes="Evo-1's second stage: the VLM trains with the head (the training row to compare with policies that "
            "train their language model: A1, VITA-VLA); inference is the same as evo1",
        ),
        BenchCase(
            name="evo1 (accelerated)",
            policy_type="evo1",
            size="tiny",
            overrides=TINY_OVERRIDES,
            prepare=_tiny_backbone,
            dtype_overrides=DTYPE_OVERRIDES,
            setup=_accelerate,
            notes=ACCELERATED_NOTES,
        ),
        BenchCase(
            name="evo1 (accelerated)",
            policy_type="evo1",
            size="paper",
            overrides=PAPER_OVERRIDES,
            dtype_overrides=DTYPE_OVERRIDES,
            setup=_accelerate,
            notes=ACCELERATED_NOTES,
        ),
    ]
