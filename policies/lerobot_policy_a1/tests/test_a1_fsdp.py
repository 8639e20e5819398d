"""The shipped 7B accelerate config (FSDP) on a tiny A1: two CPU processes (gloo) wrap, shard and train it."""

from __future__ import annotations

import math

from lerobot_vla_tools.testing.fsdp import run_fsdp_step
from lerobot_vla_tools.training.accelerate import config_path


def test_fsdp_config_shards_every_backbone_and_expert_decoder_layer_and_trains(tiny_molmo, tmp_path):
    rank0, rank1 = run_fsdp_step("a1", {"vlm_name": str(tiny_molmo)}, config_path("fsdp_7b"), tmp_path)
    # accelerate's auto-wrap found every Qwen2 decoder layer: the VLM's 4 and the flow-matching expert's 4
    assert len(rank0["units"]) == len(rank0["layers"]) == 8
    assert (
        sum(".backbone." in u for u in rank0["units"]) == 4
        and sum(".head.expert." in u for u in rank0["units"]) == 4
    )
    # FULL_SHARD: each process holds half of the parameters
    half = rank0["full_numel"] / 2  # (flat-parameter shards are padded to equal sizes, hence the 1 %)
    assert abs(rank0["shard_numel"] - half) < 0.01 * half and abs(rank1["shard_numel"] - half) < 0.01 * half
    # the expert reads every layer's K/V and the loss is averaged over all exits; the step trained through them
    assert math.isfinite(rank0["loss"]) and math.isfinite(rank1["loss"])
    assert rank0["num_frozen"] > 0 and rank0["frozen_unchanged"]
    assert rank0["trainable_changed"] > 0.9 * rank0["num_trainable"]
    assert (tmp_path / "full_state_dict.safetensors").is_file()
