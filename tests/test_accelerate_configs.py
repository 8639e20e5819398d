"""The accelerate configs shipped for training at scale, read the way ``accelerate launch`` reads them."""

from __future__ import annotations

import pytest
from lerobot_vla_tools.training.accelerate import available_configs, config_path, launch_env, main


def test_fsdp_7b_is_what_lerobots_fsdp_path_needs():
    env = launch_env(config_path("fsdp_7b"), "--num_processes=8")
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "1"  # LeRobot 0.6.1 supports FSDP1
    assert env["FSDP_USE_ORIG_PARAMS"] == "true"  # optimizer built before prepare, frozen parts mixed in
    assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"  # LeRobot gathers model.safetensors on rank 0
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert (
        env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
        and env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "Qwen2DecoderLayer"
    )


def test_zero2_is_one_flag_away():
    env = launch_env(config_path("fsdp_7b"), "--fsdp_sharding_strategy=SHARD_GRAD_OP")
    assert env["FSDP_SHARDING_STRATEGY"] == "SHARD_GRAD_OP"


def test_the_command_prints_a_path_or_names_the_shipped_configs(capsys):
    assert main(["fsdp_7b"]) == 0 and capsys.readouterr().out.strip().endswith("fsdp_7b.yaml")
    assert main(["fsdp_70b"]) == 2 and "fsdp_7b" in capsys.readouterr().err
    assert main([]) == 0 and capsys.readouterr().out.split() == available_configs()
    with pytest.raises(ValueError, match="no accelerate config named 'x'"):
        config_path("x")
