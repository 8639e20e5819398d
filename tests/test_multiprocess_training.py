"""Every policy type under LeRobot's accelerate multi-process path on CPU (``accelerate launch``, 2 processes, gloo):
``lerobot-train`` runs with a doubled effective batch, every rank ends with the same weights (and the saved
checkpoint holds them), frozen parts stay frozen on every rank, and the result resumes in a single process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from lerobot_vla_tools.testing import lerobot_env, run_cli
from lerobot_vla_tools.testing.ddp import accelerate_command, free_port
from lerobot_vla_tools.testing.evo1 import TINY_EVO1_FLAGS
from safetensors.torch import load_file


def launch_two_processes(out, dump, *train_args) -> str:
    env = lerobot_env()
    env["VLA_DDP_DUMP_DIR"] = str(dump)
    proc = subprocess.run(
        accelerate_command(2, free_port(), *train_args, f"--output_dir={out}"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


# Tiny flags per policy type (the backbones are built under ``scratch``); each case also names the parameters it
# must train (a substring of their names), so the test knows the step reached them.
def _evo1(scratch: Path, tiny_internvl: Path) -> tuple[list[str], str]:
    return [*TINY_EVO1_FLAGS, f"--policy.vlm_model_name={tiny_internvl}"], ".action_head."


def _vla_adapter(scratch: Path, tiny_internvl: Path) -> tuple[list[str], str]:
    from lerobot_vla_tools.testing.prismatic import build_tiny_prismatic

    vlm = build_tiny_prismatic(scratch / "tiny_prismatic")
    return [
        "--policy.type=vla_adapter",
        f"--policy.vlm_path={vlm}",
        "--policy.num_action_queries=8",
        "--policy.training_mode=lora",
        "--policy.lora_rank=4",
        "--policy.lora_alpha=8",
    ], "lora_"


def _a1(scratch: Path, tiny_internvl: Path) -> tuple[list[str], str]:
    from lerobot_vla_tools.speed.cases.a1 import cases

    (tiny,) = [c for c in cases() if c.key == "a1 (tiny, flow matching)@tiny"]
    overrides = {**tiny.resolve_overrides(scratch), "exit_interval": 1}
    # random exit training: the layer drawn on rank 0 is broadcast, so both ranks train the same exit
    return [
        "--policy.type=a1",
        "--policy.exit_training=random",
        *[f"--policy.{k}={v}" for k, v in overrides.items()],
    ], ".head."


def _seer(scratch: Path, tiny_internvl: Path) -> tuple[list[str], str]:
    from lerobot_vla_tools.testing.seer import build_tiny_seer_encoders

    overrides = build_tiny_seer_encoders(scratch / "tiny_seer")
    return [
        "--policy.type=seer",
        "--policy.history_length=2",
        *[f"--policy.{k}={v}" for k, v in overrides.items()],
    ], "trunk"


def _vita_vla(scratch: Path, tiny_internvl: Path) -> tuple[list[str], str]:
    from lerobot_vla_tools.testing.vita import build_tiny_vita_with_teacher

    # stage 1: the frozen Seer teacher runs on every rank inside the forward; only the adapters train
    overrides = build_tiny_vita_with_teacher(scratch)
    return [
        "--policy.type=vita_vla",
        "--policy.stage=align",
        *[f"--policy.{k}={v}" for k, v in overrides.items()],
    ], "action_mapper"


CASES = {"evo1": _evo1, "vla_adapter": _vla_adapter, "a1": _a1, "seer": _seer, "vita_vla": _vita_vla}


@pytest.fixture(scope="module", params=list(CASES))
def ddp_run(request, tmp_path_factory, metaworld_dataset, tiny_internvl):
    repo_id, root = metaworld_dataset
    base = tmp_path_factory.mktemp(f"ddp_{request.param}")
    flags, trained = CASES[request.param](base / "scratch", tiny_internvl)
    log = launch_two_processes(
        base / "train",
        base / "dump",
        *flags,
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--steps=3",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=3",
        "--log_freq=1",
    )
    return base, log, trained


def test_two_processes_train_with_a_doubled_effective_batch(ddp_run):
    base, log, _ = ddp_run
    assert "Effective batch size: 2 x 2 = 4" in log
    step = json.loads(
        (base / "train" / "checkpoints" / "last" / "training_state" / "training_step.json").read_text()
    )
    assert step == {"step": 3, "num_processes": 2, "batch_size": 2}


def test_every_rank_ends_with_identical_weights(ddp_run):
    base, _, _ = ddp_run
    rank0, rank1 = (load_file(base / "dump" / f"rank{r}.safetensors") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert rank0[key].equal(rank1[key]), key
    saved = load_file(base / "train" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors")
    assert saved
    for key in saved:
        assert saved[key].equal(rank0[key]), key


def test_frozen_parts_are_unchanged_and_trained_parts_changed_on_every_rank(ddp_run):
    base, _, trained = ddp_run
    for r in (0, 1):
        init = load_file(base / "dump" / f"rank{r}_init.safetensors")
        final = load_file(base / "dump" / f"rank{r}.safetensors")
        trainable = set(json.loads((base / "dump" / f"rank{r}_trainable.json").read_text()))
        frozen = [k for k in init if k not in trainable]
        assert frozen, "every policy here freezes something (a vision encoder, the VLM, the base weights)"
        assert all(init[k].equal(final[k]) for k in frozen), [
            k for k in frozen if not init[k].equal(final[k])
        ][:5]
        changed = [k for k in trainable if not init[k].equal(final[k])]
        assert any(trained in k for k in changed), f"no parameter matching {trained!r} changed"


def test_a_two_process_run_resumes_in_a_single_process(ddp_run):
    base, _, _ = ddp_run
    config = base / "train" / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    run_cli("lerobot-train", f"--config_path={config}", "--resume=true", "--steps=4")
    step = json.loads(
        (base / "train" / "checkpoints" / "000004" / "training_state" / "training_step.json").read_text()
    )
    assert step["step"] == 4 and step["num_processes"] == 1
