"""The shipped 7B accelerate config (FSDP) on a tiny VITA-VLA in stage 2: two CPU processes (gloo) wrap, shard
and train it, with the vision tower frozen inside the sharded units."""

from __future__ import annotations

import math

from lerobot_vla_tools.testing.fsdp import run_fsdp_step
from lerobot_vla_tools.training.accelerate import config_path


def test_fsdp_config_shards_every_language_model_layer_and_trains_stage_two(
    tiny_vita_path, teacher_path, tmp_path
):
    rank0, rank1 = run_fsdp_step(
        "vita_vla",
        {"vlm_path": str(tiny_vita_path), "teacher_path": str(teacher_path)},
        config_path("fsdp_7b"),
        tmp_path,
    )
    assert rank0["layers"] and len(rank0["units"]) == len(rank0["layers"])
    assert all(".backbone." in u for u in rank0["units"])
    half = rank0["full_numel"] / 2  # (flat-parameter shards are padded to equal sizes, hence the 1 %)
    assert abs(rank0["shard_numel"] - half) < 0.01 * half and abs(rank1["shard_numel"] - half) < 0.01 * half
    assert math.isfinite(rank0["loss"]) and math.isfinite(rank1["loss"])
    assert rank0["num_frozen"] > 0 and rank0["frozen_unchanged"]  # vision tower and projector (stage 2)
    assert rank0["trainable_changed"] > 0
