"""VITA-VLA's configuration: stages, teacher compatibility, clear errors, paper-size parameter counts."""

from __future__ import annotations

import json

import pytest
from lerobot_policy_vita_vla.configuration_vita_vla import VitaVlaConfig

from lerobot_vla_plugins.errors import ConfigError


def test_an_unknown_stage_is_refused_with_the_stages_listed():
    with pytest.raises(
        ConfigError,
        match=r"stage='pretrain' does not exist; choose one of \('align', 'finetune', 'only_finetune', 'freeze_vlm'\)",
    ):
        VitaVlaConfig(stage="pretrain")


@pytest.mark.parametrize(
    "kwargs,match",
    [({"align_loss": "cosine"}, "align_loss='cosine'"), ({"arm_loss": "huber"}, "arm_loss='huber'")],
)
def test_unknown_losses_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VitaVlaConfig(**kwargs)


def test_the_teachers_width_history_and_layout_are_adopted(make_vita, teacher_path):
    policy = make_vita("align")
    assert policy.config.teacher_hidden_size == 32
    assert policy.model.action_mapper[-1].out_features == 32


# raised while the config is built when the teacher is a local directory, else when the policy loads it
BAD_TEACHER = (ValueError, ConfigError)


def test_a_teacher_of_another_width_is_refused(make_vita):
    with pytest.raises(
        BAD_TEACHER, match=r"is 32 wide but teacher_hidden_size=64.*--policy.teacher_hidden_size=32"
    ):
        make_vita("align", teacher_hidden_size=64)


def test_a_history_other_than_the_teachers_is_refused(make_vita):
    with pytest.raises(
        BAD_TEACHER,
        match=r"history_length=3 but teacher_path=.* was trained with 2 steps; pass --policy.history_length=2",
    ):
        make_vita("align", history_length=3)


def test_a_teacher_of_another_action_layout_is_refused(make_vita, save_teacher):
    teacher = save_teacher(
        state_dim=4, action_dim=7
    )  # e.g. a 6+1-D LIBERO teacher on a 4-D Meta-World dataset
    with pytest.raises(
        BAD_TEACHER, match=r"predicts 7-D actions \(6 arm \+ gripper\) but this dataset's action is 4-D"
    ):
        make_vita("align", teacher_path=str(teacher))


def test_a_teacher_reading_cameras_the_dataset_lacks_is_refused(make_vita, save_teacher):
    teacher = save_teacher(cameras=("observation.images.image", "observation.images.image2"))
    with pytest.raises(ValueError, match="the teacher reads cameras"):
        make_vita("align", teacher_path=str(teacher))


def test_a_teacher_that_is_not_a_seer_policy_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"type": "act"}))
    with pytest.raises(ConfigError, match="is a 'act' policy; the teacher must be a trained 'seer' policy"):
        VitaVlaConfig(teacher_path=str(tmp_path))


def test_stages_that_need_a_teacher_or_a_checkpoint_say_so(make_vita):
    with pytest.raises(ValueError, match="needs the trained Seer teacher: pass --policy.teacher_path"):
        make_vita("align", teacher_path=None)
    with pytest.raises(ValueError, match="continues a trained VITA-VLA: pass --policy.path"):
        make_vita("finetune")
    with pytest.raises(ValueError, match="continues a trained VITA-VLA"):
        make_vita("freeze_vlm")


def test_vita_in_its_released_layout_is_refused_with_the_conversion_command(make_vita, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vita-Qwen2"}))
    with pytest.raises(ValueError, match="released layout.*lerobot-vita-convert"):
        make_vita("only_finetune", vlm_path=str(tmp_path))


def _stage_one_params(width: int, teacher: int, arm: int, gripper_in: int) -> int:
    """Table 6: arm encoder Linear(arm -> D), gripper encoder Linear(2 -> D), projector Linear(2D -> D), the action
    token (D), mapper Linear(D -> D_t) + 2 x Linear(D_t -> D_t)."""
    state = (arm + 1) * width + (gripper_in + 1) * width + (2 * width + 1) * width
    return state + width + (width + 1) * teacher + 2 * (teacher + 1) * teacher


def test_stage_one_trains_about_30m_parameters_at_paper_size():
    """Paper Sec. 3.3: "only the state encoder, action tokens, and action mapper are trained, comprising a total of
    approximately 30 million parameters" (VITA-1.5 7B, 1024-wide CALVIN teacher, 7-D CALVIN state)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_vla_tools.cli.info import build_on_meta, count_parameters

    cfg = VitaVlaConfig()
    cfg.input_features = {
        "observation.images.static": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 200, 200)),
        "observation.images.gripper": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 84, 84)),
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(7,)),
    }
    cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))}
    counts = count_parameters(build_on_meta(cfg))
    assert counts["trainable_params"] == _stage_one_params(3584, 1024, arm=6, gripper_in=2) == 31_503_360
    assert counts["total_params"] > 7.3e9


def test_lerobot_vla_info_reports_the_paper_size_model_for_metaworld(capsys):
    from lerobot_vla_tools.cli.info import main

    assert main(["--policy.type=vita_vla", "--json=true"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Meta-World's 4-D state: Linear(3 -> D) arm, Linear(1 -> D) gripper width
    assert counts["trainable_params"] == _stage_one_params(3584, 1024, arm=3, gripper_in=1)
    assert counts["modules"]["model.backbone"]["trainable"] == 0


def test_pil_image_size_resizes_frames_in_the_preprocessor(make_vita):
    """--policy.pil_image_size=200: the released CLIPImageProcessor's PIL resize, before the model."""
    import torch
    from lerobot_policy_vita_vla.processor_vita_vla import make_vita_vla_pre_post_processors

    from lerobot_vla_plugins.processors.pil_resize import PilResizeStep, pil_resize_center_crop

    policy = make_vita("only_finetune", pil_image_size=56)
    pre, _ = make_vita_vla_pre_post_processors(policy.config)
    assert [s.size for s in pre.steps if isinstance(s, PilResizeStep)] == [56]
    frame = torch.rand(3, 64, 64)
    out = pre({"observation.image": frame, "observation.state": torch.zeros(4), "task": "press"})
    assert torch.equal(out["observation.image"][0], pil_resize_center_crop(frame, 56))
    with pytest.raises(ConfigError, match="pil_image_size must be >= 1"):
        make_vita("only_finetune", pil_image_size=0)
