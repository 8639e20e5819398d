"""Training under LeRobot's accelerate multi-process path on CPU (2 processes, gloo): every rank ends with the
same weights, frozen parts stay frozen on every rank, and the result resumes in a single process."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from safetensors.torch import load_file

from lerobot_vla_plugins.testing import lerobot_env, run_cli
from lerobot_vla_plugins.testing.ddp import accelerate_command

from lerobot_vla_plugins.testing.evo1 import TINY_EVO1_FLAGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(out, dump, *train_args) -> str:
    env = lerobot_env()
    env["VLA_DDP_DUMP_DIR"] = str(dump)
    proc = subprocess.run(
        accelerate_command(2, _free_port(), *train_args, f"--output_dir={out}"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


@pytest.fixture(scope="module")
def evo1_ddp(tmp_path_factory, metaworld_dataset, tiny_internvl):
    repo_id, root = metaworld_dataset
    base = tmp_path_factory.mktemp("ddp")
    log = launch_two_processes(
        base / "train", base / "dump", *TINY_EVO1_FLAGS, f"--policy.vlm_model_name={tiny_internvl}",
        f"--dataset.repo_id={repo_id}", f"--dataset.root={root}", "--steps=3", "--batch_size=2", "--num_workers=0",
        "--save_freq=3", "--log_freq=1",
    )
    return base, log


def test_two_processes_train_with_a_doubled_effective_batch(evo1_ddp):
    base, log = evo1_ddp
    assert "Effective batch size: 2 x 2 = 4" in log
    step = json.loads((base / "train" / "checkpoints" / "last" / "training_state" / "training_step.json").read_text())
    assert step == {"step": 3, "num_processes": 2, "batch_size": 2}


def test_every_rank_ends_with_identical_weights(evo1_ddp):
    base, _ = evo1_ddp
    rank0, rank1 = (load_file(base / "dump" / f"rank{r}.safetensors") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert rank0[key].equal(rank1[key]), key
    saved = load_file(base / "train" / "checkpoints" / "last" / "pretrained_model" / "model.safetensors")
    for key in saved:
        assert saved[key].equal(rank0[key]), key


def test_frozen_backbone_is_unchanged_on_every_rank(evo1_ddp):
    base, _ = evo1_ddp  # evo1 stage1 (its default) freezes the whole VLM
    for r in (0, 1):
        init = load_file(base / "dump" / f"rank{r}_init.safetensors")
        final = load_file(base / "dump" / f"rank{r}.safetensors")
        vlm = [k for k in init if ".embedder." in k]
        head = [k for k in init if ".action_head." in k]
        assert vlm and head
        assert all(init[k].equal(final[k]) for k in vlm)
        assert any(not init[k].equal(final[k]) for k in head)


def test_a_two_process_run_resumes_in_a_single_process(evo1_ddp):
    base, _ = evo1_ddp
    config = base / "train" / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    run_cli("lerobot-train", f"--config_path={config}", "--resume=true", "--steps=4")
    step = json.loads((base / "train" / "checkpoints" / "000004" / "training_state" / "training_step.json").read_text())
    assert step["step"] == 4 and step["num_processes"] == 1
