"""Configuration of VITA-VLA (Dong et al. 2025, "VITA-VLA: Efficiently Teaching Vision-Language Models to Act via
Action Expert Distillation").

Defaults are the paper's model: VITA-1.5 (InternViT-300M + MLP + Qwen2.5-7B) in transformers' native InternVL
layout (``lerobot-vita-convert`` writes it from the released weights), 200x200 images (49 tokens each), one
state token and three action tokens per step over a history of 10 steps (CALVIN; LIBERO used 7), an action
mapper into a 1024-wide Seer-Large teacher's space. Training runs in stages (``--policy.stage``):

* ``align`` (Sec. 3.3 stage 1): the teacher (``--policy.teacher_path``, a trained ``seer`` policy) runs on the
  same batch; only the state encoder, the action token and the mapper train, matching the mapped action-token
  states to the teacher's [INV] outputs (``align_loss``);
* ``finetune`` (stage 2, from an ``align`` checkpoint with ``--policy.path``): the language model, state
  encoder, action token, mapper and the action decoder train (vision tower and projector frozen); arm
  Smooth-L1 (or L1) + 0.01 BCE gripper;
* ``only_finetune`` (the "only-finetune" ablation, Tables 1 and 3): stage 2 directly, with the teacher's decoder
  attached to a fresh mapper (``--policy.teacher_path``);
* ``freeze_vlm`` (the "freeze-VLM" ablation, Sec. 4.2): stage 2 with the whole VLM frozen, from a checkpoint
  whose action modules are trained (``--policy.path``).

The state/action layout follows ``seer`` (see ``lerobot_policy_seer.configuration_seer``): the last action dim is
the gripper; the state's trailing ``gripper_state_dim`` dims are encoded one-hot or as width (7-D CALVIN state:
6 + 1 one-hot, 8-D LIBERO: 6 + 2 width, Meta-World's 4-D: 3 + 1 width).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig
from lerobot.utils.constants import ACTION, OBS_STATE
from lerobot_policy_seer.configuration_seer import (
    GRIPPER_STATE_MODES,
    resolve_gripper_state,
)

from lerobot_vla_plugins.errors import ConfigError

STAGES = ("align", "finetune", "only_finetune", "freeze_vlm")
ALIGN_LOSSES = ("l2", "mse")
ARM_LOSSES = ("smooth_l1", "l1")
#: Width of the paper's CALVIN teacher (Seer-Large), used when no teacher is given (e.g. lerobot-vla-info).
DEFAULT_TEACHER_WIDTH = 1024

#: The released system prompt (Tencent/VITA@VITA-VLA ``utils/conversation.py``, ``conv_qwen2p5_instruct.system[0]``,
#: the image variant), character for character: the source's triple-quoted string keeps its line breaks and
#: 8-space indents, and the written ``\n`` escapes add more.
VITA_SYSTEM_PROMPT = (
    "You are an AI robot and your name is VITA. \n- \n"
    "        Your aim is to be helpful, honest and harmless. \n- \n"
    "        You are a large language model in the field of embodied intelligence. \n"
    "        Please combine the macro action instructions(maybe None) with \n"
    "        the current state of the robotic arm (the first six values represent the arm's state, \n"
    "        and the seventh value represents the gripper's state), \n"
    "        as well as the observations from the camera (primary image, wrist image), \n"
    "        to provide me with the next action output. You need to do this step by step, \n"
    "        predicting only three future actions at each step. \n"
)


def read_teacher_config(path: str) -> dict | None:
    """The teacher's ``config.json`` as a dict when ``path`` is a local policy directory (None otherwise)."""
    file = Path(path).expanduser() / "config.json"
    return json.loads(file.read_text()) if file.is_file() else None


@PreTrainedConfig.register_subclass("vita_vla")
@dataclass
class VitaVlaConfig(PreTrainedConfig):
    stage: str = "align"

    # VLM in transformers' native InternVL layout (a Hub id or a local directory). VITA-1.5's own release is not
    # in that layout: convert it once with lerobot-vita-convert.
    vlm_path: str = "VITA-MLLM/VITA-1.5"
    # bfloat16 as trained (DeepSpeed bf16); float32 for CPU runs.
    vlm_dtype: str = "bfloat16"
    # Recompute the language model's layers in the backward pass instead of storing their activations (the 7B
    # recipe turns it on: docs/training_at_scale.md). Outputs and gradients are unchanged.
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    # torch.compile the policy's repeated blocks (vision/decoder layers, head blocks) in place; compile_mode is
    # torch.compile's mode ("reduce-overhead" adds CUDA graphs on a GPU). Same outputs up to float tolerance.
    # lerobot_vla_plugins.speed.compile.
    compile_model: bool = False
    compile_mode: str = "default"
    # Images are resized to this square size: 200 px -> 14x14 patches of 14 px -> 49 tokens (Appendix A.1).
    vlm_image_size: int = 200
    # Resize the camera frames in the preprocessor to this square size with PIL on uint8 frames, as the released
    # CLIPImageProcessor does (200 with vlm_image_size 200); None: the model resizes them (torch bicubic with
    # antialias, within about one grey level: docs/parity.md).
    pil_image_size: int | None = None
    system_prompt: str = VITA_SYSTEM_PROMPT

    # Steps per sample, one conversation turn each (must equal the teacher's): CALVIN 10, LIBERO 7.
    history_length: int = 10
    # Action tokens per turn = future actions per step (the teacher's [INV] count).
    action_pred_steps: int = 3

    # A trained ``seer`` policy directory (or Hub repo): the stage-1 teacher and the source of the action decoder.
    teacher_path: str | None = None
    # Output width of the action mapper = the teacher's width (1024 Seer-Large CALVIN, 384 Seer LIBERO);
    # None takes it from the teacher (or 1024 without one).
    teacher_hidden_size: int | None = None

    gripper_state_mode: str | None = None
    gripper_state_dim: int | None = None

    # Stage-1 loss: "l2" = mean per-token Euclidean distance sqrt(sum((u - v)^2)) (released code), "mse" = eq. (3),
    # (1/N) sum_i ||M(a_i) - a_i^Small||_2^2.
    align_loss: str = "l2"
    # Stage-2 arm loss: "smooth_l1" (released code) or "l1" (the paper's MAE, Sec. 3.3).
    arm_loss: str = "smooth_l1"
    arm_loss_weight: float = 1.0
    # lambda = 0.01 (Sec. 3.3); the released train_utils_ds.py computes but never adds this term: here it is added.
    gripper_loss_weight: float = 0.01

    # Inference rule (lerobot_policy_seer.inference). Defaults: the released CALVIN evaluation
    # (eval_utils_calvin_vita.py): pad a history shorter than S with the last frame, run S turns, execute the
    # last turn's second predicted action (executed_action=1). The released LIBERO evaluation: pad_history=false,
    # temporal_ensemble=true (which replaces executed_action by the ensemble, weights exp(-0.01 i)).
    pad_history: bool = True
    executed_action: int = 1
    temporal_ensemble: bool = False
    ensemble_temperature: float = 0.01
    binarize_gripper: bool = True

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.MEAN_STD,
            "ACTION": NormalizationMode.MIN_MAX,
        }
    )

    # Defaults are the paper's (Table 5: AdamW, lr 1e-4, cosine decay with warmup) plus the released scripts'
    # weight decay 1e-4 (the paper gives none). The released train_ds.py differs in two ways: its DeepSpeed
    # config sets no gradient clipping (--policy.optimizer_grad_clip_norm=0 turns ours off; 1.0 is LeRobot's usual
    # value, the paper gives none) and it schedules with DeepSpeed's WarmupDecayLR for both "cosine" and
    # "linear", i.e. a linear warmup over a tenth of the steps, then a linear decay to 0.
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.9, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-4
    optimizer_grad_clip_norm: float = 1.0
    scheduler_warmup_steps: int = 1000
    scheduler_decay_steps: int = 30_000
    scheduler_decay_lr: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        from lerobot_vla_plugins.speed.compile import check_compile_mode

        check_compile_mode("vita_vla", self.compile_mode)
        if self.stage not in STAGES:
            raise ConfigError(
                f"vita_vla: stage={self.stage!r} does not exist; choose one of {STAGES} "
                "(align = stage 1, finetune = stage 2, only_finetune / freeze_vlm = the paper's ablations)"
            )
        if self.align_loss not in ALIGN_LOSSES:
            raise ConfigError(
                f"vita_vla: align_loss={self.align_loss!r} is unknown; choose one of {ALIGN_LOSSES}"
            )
        if self.arm_loss not in ARM_LOSSES:
            raise ConfigError(f"vita_vla: arm_loss={self.arm_loss!r} is unknown; choose one of {ARM_LOSSES}")
        if self.gripper_state_mode is not None and self.gripper_state_mode not in GRIPPER_STATE_MODES:
            raise ConfigError(
                f"vita_vla: gripper_state_mode={self.gripper_state_mode!r} is unknown; choose one of {GRIPPER_STATE_MODES}"
            )
        if self.pil_image_size is not None and self.pil_image_size < 1:
            raise ConfigError(
                f"vita_vla: pil_image_size must be >= 1 (200 = the released preprocessing) or None, got {self.pil_image_size}"
            )
        for name in ("history_length", "action_pred_steps", "vlm_image_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"vita_vla: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.executed_action < self.action_pred_steps:
            raise ConfigError(
                f"vita_vla: executed_action={self.executed_action} is not one of the {self.action_pred_steps} actions "
                f"predicted per step; pass a value in [0, {self.action_pred_steps - 1}] (1 = released CALVIN rule)"
            )
        if self.teacher_hidden_size is not None and self.teacher_hidden_size < 2:
            raise ConfigError(f"vita_vla: teacher_hidden_size must be >= 2, got {self.teacher_hidden_size}")
        if self.teacher_path:
            teacher = read_teacher_config(self.teacher_path)
            if teacher is not None:
                self.check_teacher_config(teacher, error=ConfigError)

    def check_teacher_config(self, teacher: dict, error: type[Exception] = ValueError) -> None:
        """Raise a clear ``error`` when the teacher cannot serve this configuration (another policy type, width,
        history or action layout); adopt its width when ``teacher_hidden_size`` is None."""
        where = f"teacher_path={self.teacher_path}"
        if teacher.get("type") != "seer":
            raise error(
                f"vita_vla: {where} is a {teacher.get('type')!r} policy; the teacher must be a trained 'seer' policy"
            )
        width = teacher.get("hidden_dim")
        if self.teacher_hidden_size is None:
            self.teacher_hidden_size = width
        elif width != self.teacher_hidden_size:
            raise error(
                f"vita_vla: {where} is {width} wide but teacher_hidden_size={self.teacher_hidden_size} (the action mapper's "
                f"output); pass --policy.teacher_hidden_size={width} or a teacher of width {self.teacher_hidden_size}"
            )
        if teacher.get("history_length") != self.history_length:
            raise error(
                f"vita_vla: history_length={self.history_length} but {where} was trained with "
                f"{teacher.get('history_length')} steps; pass --policy.history_length={teacher.get('history_length')}"
            )
        if teacher.get("action_pred_steps") != self.action_pred_steps:
            raise error(
                f"vita_vla: action_pred_steps={self.action_pred_steps} but {where} predicts "
                f"{teacher.get('action_pred_steps')} actions per step; pass --policy.action_pred_steps={teacher.get('action_pred_steps')}"
            )
        teacher_action = teacher.get("output_features", {}).get(ACTION, {}).get("shape")
        ours = self.output_features.get(ACTION).shape if self.output_features.get(ACTION) else None
        if teacher_action is not None and ours is not None and tuple(teacher_action) != tuple(ours):
            raise error(
                f"vita_vla: {where} predicts {tuple(teacher_action)[0]}-D actions ({tuple(teacher_action)[0] - 1} arm + gripper) "
                f"but this dataset's action is {ours[0]}-D; the teacher's decoder cannot produce it: train a seer teacher on "
                "this action layout"
            )

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError(
                "vita_vla: needs at least one camera (an observation.image* feature); the dataset has none"
            )
        if self.robot_state_feature is None:
            raise ValueError(f"vita_vla: needs the robot state '{OBS_STATE}'; the dataset has none")
        if self.action_feature is None or self.action_feature.shape[0] < 2:
            raise ValueError(
                f"vita_vla: needs an '{ACTION}' of at least 2 dims (arm + gripper, the gripper last)"
            )
        for key, feature in self.image_features.items():
            if feature.type is not FeatureType.VISUAL or len(feature.shape) != 3:
                raise ValueError(f"vita_vla: camera {key} must be a (3, H, W) image, got {feature.shape}")
        self.gripper_state_mode, self.gripper_state_dim = resolve_gripper_state(
            self.robot_state_feature.shape[0],
            self.gripper_state_mode,
            self.gripper_state_dim,
            owner="vita_vla",
        )
        if self.teacher_path:
            teacher = read_teacher_config(self.teacher_path)
            if teacher is not None:
                self.check_teacher_config(teacher)

    @property
    def camera_keys(self) -> list[str]:
        return list(self.image_features)

    @property
    def arm_action_dim(self) -> int:
        return self.action_feature.shape[0] - 1

    @property
    def mapper_width(self) -> int:
        return self.teacher_hidden_size or DEFAULT_TEACHER_WIDTH

    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.history_length, 1))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(1 - self.history_length, self.action_pred_steps))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(
            lr=self.optimizer_lr,
            betas=self.optimizer_betas,
            eps=self.optimizer_eps,
            weight_decay=self.optimizer_weight_decay,
            grad_clip_norm=self.optimizer_grad_clip_norm,
        )

    def get_scheduler_preset(self) -> CosineDecayWithWarmupSchedulerConfig:
        return CosineDecayWithWarmupSchedulerConfig(
            peak_lr=self.optimizer_lr,
            decay_lr=self.scheduler_decay_lr,
            num_warmup_steps=self.scheduler_warmup_steps,
            num_decay_steps=self.scheduler_decay_steps,
        )
