"""The paper's recipe through LeRobot's own commands on the real cached Meta-World dataset with tiny backbones:
``lerobot-train --policy.type=seer``, then ``--policy.type=vita_vla --policy.stage=align
--policy.teacher_path=<seer>``, then ``--policy.stage=finetune --policy.path=<align>``; resume, the lerobot-eval
loading path and a (mocked) push."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from lerobot_vla_tools.testing import run_cli
from safetensors.torch import load_file

HISTORY = "2"


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def chain(tmp_path_factory, metaworld_dataset, tiny_seer_overrides, tiny_vita_path):
    repo_id, root = metaworld_dataset
    base = tmp_path_factory.mktemp("vita_chain")
    data = [
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        "--num_workers=0",
        "--log_freq=1",
        "--batch_size=2",
    ]
    run_cli(
        "lerobot-train",
        "--policy.type=seer",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        *[f"--policy.{k}={v}" for k, v in tiny_seer_overrides.items()],
        f"--policy.history_length={HISTORY}",
        *data,
        "--steps=1",
        "--save_freq=1",
        f"--output_dir={base / 'seer'}",
    )
    teacher = base / "seer" / "checkpoints" / "last" / "pretrained_model"
    teacher_hash = sha(teacher / "model.safetensors")
    align = run_cli(
        "lerobot-train",
        "--policy.type=vita_vla",
        "--policy.stage=align",
        f"--policy.teacher_path={teacher}",
        f"--policy.vlm_path={tiny_vita_path}",
        "--policy.vlm_dtype=float32",
        "--policy.vlm_image_size=56",
        f"--policy.history_length={HISTORY}",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        *data,
        "--steps=2",
        "--save_freq=2",
        f"--output_dir={base / 'align'}",
    )
    aligned = base / "align" / "checkpoints" / "last" / "pretrained_model"
    finetune = run_cli(
        "lerobot-train",
        f"--policy.path={aligned}",
        "--policy.stage=finetune",
        *data,
        "--steps=1",
        "--save_freq=1",
        f"--output_dir={base / 'finetune'}",
    )
    return {
        "teacher": teacher,
        "teacher_hash": teacher_hash,
        "aligned": aligned,
        "align_log": align.stdout,
        "finetuned": base / "finetune" / "checkpoints" / "last" / "pretrained_model",
        "finetune_log": finetune.stdout,
        "align_run": base / "align",
    }


def test_align_trains_the_stage_one_modules_against_the_teacher(chain):
    assert "align_loss:" in chain["align_log"]
    config = json.loads((chain["aligned"] / "config.json").read_text())
    assert config["stage"] == "align" and config["teacher_hidden_size"] == 32
    weights = load_file(str(chain["aligned"] / "model.safetensors"))
    assert not any("teacher" in k for k in weights)  # the teacher is not saved with the student
    teacher = load_file(str(chain["teacher"] / "model.safetensors"))
    for name in ("decoder.0.weight", "decoder.2.bias", "arm.weight", "gripper.bias"):
        assert torch.equal(weights[f"model.action_head.{name}"], teacher[f"model.action_head.{name}"])


def test_the_teacher_checkpoint_is_never_modified(chain):
    assert sha(chain["teacher"] / "model.safetensors") == chain["teacher_hash"]


def test_finetune_continues_the_aligned_model_on_actions(chain):
    assert "arm_loss:" in chain["finetune_log"] and "gripper_loss:" in chain["finetune_log"]
    config = json.loads((chain["finetuned"] / "config.json").read_text())
    assert config["stage"] == "finetune"
    before, after = (
        load_file(str(chain["aligned"] / "model.safetensors")),
        load_file(str(chain["finetuned"] / "model.safetensors")),
    )
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("model.backbone.model.language_model.") for k in changed)
    assert any(k.startswith("model.action_head.") for k in changed)
    assert not any(
        k.startswith(("model.backbone.model.vision_tower.", "model.backbone.model.multi_modal_projector."))
        for k in changed
    )


def test_align_resumes_and_reloads_its_teacher(chain):
    cfg = chain["align_run"] / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    proc = run_cli("lerobot-train", f"--config_path={cfg}", "--resume=true", "--steps=3")
    assert "step:3" in proc.stdout and "align_loss:" in proc.stdout


def test_finetuned_checkpoint_acts_through_the_lerobot_eval_loading_path(chain):
    from lerobot_vla_tools.testing.eval_path import metaworld_eval_actions

    actions = metaworld_eval_actions(chain["finetuned"])
    assert [a.shape for a in actions] == [(1, 4), (1, 4)] and all(torch.isfinite(a).all() for a in actions)


def test_push_to_hub_uploads_weights_config_and_model_card(chain):
    from lerobot_policy_vita_vla.modeling_vita_vla import VitaVlaPolicy
    from lerobot_vla_tools.testing.hub_push import push_policy_offline

    policy = VitaVlaPolicy.from_pretrained(chain["finetuned"])
    pushed = push_policy_offline(
        policy, dataset_repo_id="local/metaworld", repo_id="someone/vita-vla-metaworld"
    )
    assert {"config.json", "model.safetensors", "train_config.json", "README.md"} <= set(pushed.files)
    assert json.loads(pushed.files["config.json"])["stage"] == "finetune"
    assert "vita_vla" in pushed.readme
