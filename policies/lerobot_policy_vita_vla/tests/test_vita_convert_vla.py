"""lerobot-vita-convert --vla_checkpoint: a synthetic checkpoint in the released VITA-VLA layout (train_ds.py's
``{"epoch", "model_state_dict"}`` of the DeepSpeed engine: ``module.`` prefix, only the parameters that trained)
becomes a ``vita_vla`` policy directory whose modules compute what the official ``VITAVLA`` modules compute with
the same tensors; keys that are not the official model's, or official keys that are missing, are refused.

The key list is written from the official module definitions (Tencent/VITA@ef85f16 ``models/vita_vla.py``:
``VITAVLAModel.{action_pred_token, arm_state_encoder, gripper_state_encoder, state_projector, action_mapper
(mlp3x_gelu), vlm}``; ``VITAVLA.seer.{action_decoder, arm_action_decoder, gripper_action_decoder}`` as Seer defines
them), not from the converter's mapping."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from lerobot_policy_vita_vla.convert_vita import main
from lerobot_vla_tools.testing.vita import write_released_vita15
from safetensors.torch import load_file

D, DT, ARM = 64, 48, 6  # VITA-1.5 width (write_released_vita15's text_width), teacher width, arm dims


def official_action_modules() -> dict[str, tuple[int, ...]]:
    """Released names and shapes of VITAVLA's action modules, phase finetune (Seer's decoder trains too)."""
    shapes = {
        "model.action_pred_token": (1, D),  # nn.Parameter(torch.randn(1, hidden_size))
        "model.arm_state_encoder.weight": (D, 6),  # nn.Linear(6, ARM_STATE_FEATURE_DIM = hidden_size)
        "model.arm_state_encoder.bias": (D,),
        "model.gripper_state_encoder.weight": (D, 2),  # nn.Linear(2, GRIPPER_STATE_FEATURE_DIM = hidden_size)
        "model.gripper_state_encoder.bias": (D,),
        "model.state_projector.weight": (D, 2 * D),  # nn.Linear(ARM + GRIPPER feature dims, hidden_size)
        "model.state_projector.bias": (D,),
        # mlp3x_gelu: Linear(hidden, action_decoder_dim), GELU, Linear(dim, dim), GELU, Linear(dim, dim)
        "model.action_mapper.0.weight": (DT, D),
        "model.action_mapper.0.bias": (DT,),
        "model.action_mapper.2.weight": (DT, DT),
        "model.action_mapper.2.bias": (DT,),
        "model.action_mapper.4.weight": (DT, DT),
        "model.action_mapper.4.bias": (DT,),
        # Seer: action_decoder = Sequential(Linear(H, H/2), ReLU, Linear(H/2, H/2), ReLU),
        # arm_action_decoder = Sequential(Linear(H/2, 6), Tanh), gripper_action_decoder = Sequential(Linear(H/2, 1), Sigmoid)
        "seer.action_decoder.0.weight": (DT // 2, DT),
        "seer.action_decoder.0.bias": (DT // 2,),
        "seer.action_decoder.2.weight": (DT // 2, DT // 2),
        "seer.action_decoder.2.bias": (DT // 2,),
        "seer.arm_action_decoder.0.weight": (ARM, DT // 2),
        "seer.arm_action_decoder.0.bias": (ARM,),
        "seer.gripper_action_decoder.0.weight": (1, DT // 2),
        "seer.gripper_action_decoder.0.bias": (1,),
    }
    return shapes


@pytest.fixture(scope="module")
def vita15(tmp_path_factory):
    root = tmp_path_factory.mktemp("vita15")
    vita_dir, vit_dir = write_released_vita15(root / "llava_VITA-1.5", text_width=D)
    base = {}
    for shard in sorted(vita_dir.glob("*.safetensors")):
        base.update(load_file(str(shard)))
    return vita_dir, vit_dir, base


def released_checkpoint(base: dict, freeze_vlm: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """``get_checkpoint(engine)``: the trained parameters under ``module.``; without --freeze_vlm also
    ``vlm.model`` minus the frozen audio encoder, mm_projector and vision tower (lm_head stays frozen)."""
    g = torch.Generator().manual_seed(seed)
    sd = {"module." + k: torch.randn(s, generator=g) for k, s in official_action_modules().items()}
    if not freeze_vlm:
        llm = [k for k in base if k.startswith(("model.embed_tokens.", "model.layers.", "model.norm."))]
        assert any(".self_attn.q_proj." in k for k in llm) and "model.norm.weight" in llm
        for k in llm:  # fine-tuned: moved off the base weights
            sd["module.model.vlm." + k] = base[k] + 0.1 * torch.randn(base[k].shape, generator=g)
    return sd


def convert(tmp_path, vita15, sd, name="policy", extra=()) -> tuple[int, object]:
    vita_dir, vit_dir, _ = vita15
    ckpt = tmp_path / f"{name}.pth"
    torch.save({"epoch": 4, "model_state_dict": sd}, ckpt)
    out = tmp_path / name
    args = [f"--vita_path={vita_dir}", f"--vision_tower_path={vit_dir}", f"--vla_checkpoint={ckpt}"]
    return main([*args, f"--output_dir={out}", "--dtype=float32", "--history_length=2", *extra]), out


def official_state_embedding(sd: dict, state: torch.Tensor) -> torch.Tensor:
    """VITAVLAModel.forward (no --gripper_width): state_projector(cat(arm_state_encoder(s[:6]),
    gripper_state_encoder(one_hot(s[6] < 1 ? 0 : 1))))."""
    p = "module.model."
    arm = F.linear(state[:, :6], sd[p + "arm_state_encoder.weight"], sd[p + "arm_state_encoder.bias"])
    one_hot = F.one_hot(torch.where(state[:, 6] < 1, 0, 1), num_classes=2).float()
    grip = F.linear(one_hot, sd[p + "gripper_state_encoder.weight"], sd[p + "gripper_state_encoder.bias"])
    return F.linear(
        torch.cat((arm, grip), 1), sd[p + "state_projector.weight"], sd[p + "state_projector.bias"]
    )


def official_actions(sd: dict, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """action_mapper (mlp3x_gelu) -> seer.action_decoder -> (Tanh arm, Sigmoid gripper), as VITAVLA(generate=True)."""
    m = "module.model.action_mapper."
    x = F.gelu(F.linear(hidden, sd[m + "0.weight"], sd[m + "0.bias"]))
    x = F.gelu(F.linear(x, sd[m + "2.weight"], sd[m + "2.bias"]))
    x = F.linear(x, sd[m + "4.weight"], sd[m + "4.bias"])
    s = "module.seer."
    x = F.relu(F.linear(x, sd[s + "action_decoder.0.weight"], sd[s + "action_decoder.0.bias"]))
    x = F.relu(F.linear(x, sd[s + "action_decoder.2.weight"], sd[s + "action_decoder.2.bias"]))
    arm = torch.tanh(F.linear(x, sd[s + "arm_action_decoder.0.weight"], sd[s + "arm_action_decoder.0.bias"]))
    grip = torch.sigmoid(
        F.linear(x, sd[s + "gripper_action_decoder.0.weight"], sd[s + "gripper_action_decoder.0.bias"])
    )
    return arm, grip


@pytest.mark.parametrize("freeze_vlm", [False, True])
def test_released_vita_vla_checkpoint_converts_into_a_policy_that_uses_every_tensor(
    tmp_path, vita15, freeze_vlm
):
    from lerobot_policy_vita_vla.modeling_vita_vla import VitaVlaPolicy

    base = vita15[2]
    sd = released_checkpoint(base, freeze_vlm)
    rc, out = convert(tmp_path, vita15, sd)
    assert rc == 0
    assert {"config.json", "model.safetensors", "vlm"} <= {p.name for p in out.iterdir()}
    assert any(p.name.startswith("policy_preprocessor") for p in out.iterdir())
    policy = VitaVlaPolicy.from_pretrained(out).eval()
    cfg, model = policy.config, policy.model

    # the released inference conventions
    assert cfg.stage == ("freeze_vlm" if freeze_vlm else "finetune")
    assert cfg.vlm_path == str((out / "vlm").resolve())
    assert (cfg.vlm_image_size, cfg.pil_image_size, cfg.history_length, cfg.action_pred_steps) == (
        200,
        200,
        2,
        3,
    )
    assert (cfg.pad_history, cfg.executed_action, cfg.temporal_ensemble) == (True, 1, False)
    assert {k: v.value for k, v in cfg.normalization_mapping.items()} == dict.fromkeys(
        ("VISUAL", "STATE", "ACTION"), "IDENTITY"
    )
    assert cfg.robot_state_feature.shape == (7,) and cfg.action_feature.shape == (7,)
    assert cfg.camera_keys == ["observation.images.rgb_static", "observation.images.rgb_gripper"]

    # every action module computes what the official one computes with the released tensors
    g = torch.Generator().manual_seed(1)
    state = torch.randn(5, 7, generator=g)
    state[:, 6] = torch.tensor([-1.0, 1.0, -1.0, 1.0, 1.0])
    with torch.no_grad():
        torch.testing.assert_close(model.state_encoder(state), official_state_embedding(sd, state))
        torch.testing.assert_close(model.action_token, sd["module.model.action_pred_token"][0])
        hidden = torch.randn(5, 3, D, generator=g)
        arm, glogit = model.action_head(model.action_mapper(hidden))
        arm_o, grip_o = official_actions(sd, hidden)
    torch.testing.assert_close(arm, arm_o)
    torch.testing.assert_close(torch.sigmoid(glogit), grip_o)

    # the language model: the fine-tuned layers when the checkpoint holds them, else VITA-1.5's own
    lm = model.backbone.decoder.state_dict()
    for key in (k for k in base if k.startswith(("model.embed_tokens.", "model.layers.", "model.norm."))):
        want = base[key] if freeze_vlm else sd["module.model.vlm." + key]
        torch.testing.assert_close(lm[key.removeprefix("model.")], want, rtol=0, atol=0)


def test_unknown_and_missing_released_tensors_are_refused(tmp_path, vita15, capsys):
    sd = released_checkpoint(vita15[2], freeze_vlm=True)
    bad = {**sd, "module.model.goal_head.weight": torch.zeros(2, 2)}
    rc, out = convert(tmp_path, vita15, bad, "unknown")
    err = capsys.readouterr().err
    assert rc == 2 and "unknown tensors ['module.model.goal_head.weight']" in err
    assert not out.exists()

    missing = {k: v for k, v in sd.items() if k != "module.model.gripper_state_encoder.bias"}
    rc, out = convert(tmp_path, vita15, missing, "missing")
    err = capsys.readouterr().err
    assert rc == 2 and "missing ['model.state_encoder.gripper.bias']" in err
    assert not out.exists()

    stage1 = {k: v for k, v in sd.items() if not k.startswith("module.seer.")}  # --phase pretrain: no decoder
    rc, out = convert(tmp_path, vita15, stage1, "stage1")
    assert rc == 2 and "stage-1 (--phase pretrain) checkpoint" in capsys.readouterr().err

    wide = {**sd, "module.model.action_pred_token": torch.zeros(1, D + 1)}
    rc, out = convert(tmp_path, vita15, wide, "wide")
    err = capsys.readouterr().err
    assert rc == 2 and "model.action_token: checkpoint (65,) != model (64,)" in err


def test_libero_options_and_bad_weights(tmp_path, vita15, capsys):
    """--gripper_width (8-D state, 2-D width into gripper_state_encoder), the released LIBERO rule; weights checked."""
    sd = released_checkpoint(vita15[2], freeze_vlm=True)
    rc, out = convert(
        tmp_path,
        vita15,
        sd,
        "libero",
        ("--gripper_width=true", "--pad_history=false", "--temporal_ensemble=true"),
    )
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["input_features"]["observation.state"]["shape"] == [8]
    assert (cfg["gripper_state_mode"], cfg["gripper_state_dim"]) == ("width", 2)
    assert (cfg["pad_history"], cfg["temporal_ensemble"]) == (False, True)

    sd["module.model.state_projector.weight"] = sd["module.model.state_projector.weight"].clone()
    sd["module.model.state_projector.weight"][0, 0] = float("nan")
    rc, out = convert(tmp_path, vita15, sd, "nan")
    err = capsys.readouterr().err
    assert rc == 2 and "model.state_projector.weight" in err and "--allow_bad_weights=true" in err
