"""VITA-VLA (Dong et al. 2025): a VLM taught to act by distilling a small action model (Seer).

Per step the VLM reads one conversation turn (eq. 1): ``[img_1..img_n][text_1..text_m][state][act_1][act_2][act_3]``
with n = 49 tokens per view, in VITA-1.5's chat template under the released system prompt. The state token is
the state encoder's output; the three action tokens are one learnable embedding repeated. The last-layer
hidden states of the action tokens (eq. 2: a_h = pi_last(a_q | x, t, s)) go through the action mapper M (3-layer
GELU MLP into the teacher's width) and the teacher's action decoder D: a_hat = D(M(a_h)).

Stage 1 aligns M(a_h) with the teacher's [INV] outputs on the same batch (eq. 3); stage 2 trains on actions.

Dimension names: B batch, S steps (turns), V views, K action tokens per turn, D VLM width, D_t teacher width.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from lerobot.configs.types import NormalizationMode
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import OBS_STATE
from lerobot_policy_seer.history import build_step_batch, task_strings
from lerobot_policy_seer.inference import ActionRule, HistoryLoop
from lerobot_policy_seer.losses import action_losses, masked_mean
from lerobot_policy_seer.state_action import ActionHead, StateEncoder, gripper_to_action
from torch import Tensor, nn

from lerobot_vla_plugins.backbones.internvl import InternVLBackbone
from lerobot_vla_plugins.compat import QWEN2_WRAP_MODULES
from lerobot_vla_plugins.processors.renormalize import (
    FeatureNormaliser,
    Renormalizer,
    feature_stats,
    saved_normalizer_stats,
)
from lerobot_vla_plugins.speed.compile import compile_repeated_blocks

from .configuration_vita_vla import VitaVlaConfig

if TYPE_CHECKING:
    from lerobot_policy_seer.configuration_seer import SeerConfig
    from lerobot_policy_seer.modeling_seer import SeerPolicy

STATE_TOKEN = "<state>"
ACTION_TOKEN = "<action>"


def build_turns_prompt(
    instruction: str,
    steps: int,
    views: int,
    image_placeholder: str,
    system_prompt: str,
    action_steps: int = 3,
) -> str:
    """The released multi-turn prompt (``prepare_data_vita`` + ``conv_qwen2p5_instruct.get_prompt``): per step a user
    turn ``"<image> <image> {instruction} <state>"`` (no instruction when it contains 'no lang') and an assistant
    turn ``"<action> <action> <action>"``, in the ChatML template; the last turn has no trailing newline.
    ``<image>`` is replaced by ``image_placeholder`` (the image tokens of one view)."""
    images = " ".join([image_placeholder] * views)
    user = f"{images} {STATE_TOKEN}" if "no lang" in instruction else f"{images} {instruction} {STATE_TOKEN}"
    assistant = " ".join([ACTION_TOKEN] * action_steps)
    messages = [("user", user), ("assistant", assistant)] * steps
    prompt = f"<|im_start|>system\n{system_prompt}<|im_end|>\n"
    for i, (role, message) in enumerate(messages):
        prompt += f"<|im_start|>{role}\n{message}<|im_end|>" + ("\n" if i < len(messages) - 1 else "")
    return prompt


def align_loss(student: Tensor, teacher: Tensor, valid: Tensor, kind: str) -> Tensor:
    """Stage-1 loss over the valid action tokens. student/teacher (B, S, K, D_t), valid (B, S).

    "l2": mean over tokens of ||u - v||_2 (released ``l2_loss``); "mse": eq. (3), mean over tokens of ||u - v||_2^2.
    """
    sq = (student.float() - teacher.float()).pow(2).sum(-1)  # (B, S, K)
    per_token = sq.clamp_min(1e-12).sqrt() if kind == "l2" else sq
    return masked_mean(per_token, valid.unsqueeze(-1).expand_as(per_token))


RELEASED_VITA_ID = "VITA-MLLM/VITA-1.5"


def check_vlm_path(path: str, weightless: bool = False) -> None:
    """Refuse VITA-1.5 in its released layout (it needs the VITA repository's code) with the command that converts it.

    ``weightless=True`` accepts the released Hub id: inside ``weightless_pretrained`` it is built from its preset.
    """
    hint = (
        "convert it once with `lerobot-vita-convert --vita_path=<VITA-1.5 dir> --vision_tower_path=<InternViT-300M-448px dir> "
        "--output_dir=<dir>` and pass --policy.vlm_path=<dir>"
    )
    config = Path(path).expanduser() / "config.json"
    if config.is_file():
        import json

        model_type = str(json.loads(config.read_text()).get("model_type", ""))
        if "vita" in model_type.lower():
            raise ValueError(
                f"vita_vla: vlm_path={path} is VITA-1.5 in its released layout ({model_type!r}); {hint}"
            )
    elif path == RELEASED_VITA_ID and not weightless:
        raise ValueError(
            f"vita_vla: vlm_path={path} is published in VITA's own layout, not transformers' InternVL; {hint}"
        )


class VitaVlaModel(nn.Module):
    """VLM (``InternVLBackbone``) + state encoder + action token + action mapper + the teacher's action decoder."""

    def __init__(self, config: VitaVlaConfig, weightless: bool = False):
        super().__init__()
        self.config = config
        check_vlm_path(config.vlm_path, weightless)
        self.backbone = InternVLBackbone.from_pretrained(
            config.vlm_path,
            dtype=config.vlm_dtype,
            attn_implementation=config.attn_implementation,
            image_size=config.vlm_image_size,
        )
        self.backbone.gradient_checkpointing = config.gradient_checkpointing
        width, out = self.backbone.hidden_size, config.mapper_width
        state_dim = config.robot_state_feature.shape[0]
        self.state_encoder = StateEncoder(
            state_dim - config.gripper_state_dim, config.gripper_state_dim, config.gripper_state_mode, width
        )
        self.action_token = nn.Parameter(torch.randn(width))  # released: nn.Parameter(torch.randn(1, D))
        # mlp3x_gelu (released projector_type): Linear(D -> D_t), GELU, Linear(D_t -> D_t), GELU, Linear(D_t -> D_t)
        self.action_mapper = nn.Sequential(
            nn.Linear(width, out), nn.GELU(), nn.Linear(out, out), nn.GELU(), nn.Linear(out, out)
        )
        self.action_head = ActionHead(out, config.arm_action_dim)
        self.image_placeholder = self.backbone.image_placeholder(wrap=False)

    def prompts(self, texts: list[str], steps: int) -> list[str]:
        views = len(self.config.camera_keys)
        return [
            build_turns_prompt(
                t,
                steps,
                views,
                self.image_placeholder,
                self.config.system_prompt,
                self.config.action_pred_steps,
            )
            for t in texts
        ]

    def encode_images(self, images: Tensor) -> Tensor:
        """(B, S, V, 3, H, W) in [0, 1] -> (B, S, V, 49, D) image tokens (vision tower + projector, frozen)."""
        b, s = images.shape[:2]
        return self.backbone.encode_images(images.flatten(0, 1)).unflatten(0, (b, s))

    def forward(self, images: Tensor, state: Tensor, texts: list[str]) -> Tensor:
        """images (B, S, V, 3, H, W) in [0, 1] (or their (B, S, V, 49, D) ``encode_images`` tokens), state (B, S, D_s)
        normalised, B instructions -> M(a_h) (B, S, K, D_t)."""
        b, s, v = images.shape[:3]
        k = self.config.action_pred_steps
        dtype = self.backbone.decoder.embed_tokens.weight.dtype
        state_tokens = self.state_encoder(state.to(self.action_token.dtype))  # (B, S, D)
        action_tokens = self.action_token.view(1, 1, -1).expand(b, s * k, -1)  # the same token, K per turn
        inputs = self.backbone.prepare_inputs(
            images.flatten(1, 2),
            self.prompts(texts, s),
            inline={STATE_TOKEN: state_tokens.to(dtype), ACTION_TOKEN: action_tokens.to(dtype)},
        )
        out = self.backbone.stack.run(
            inputs
        )  # last hidden state after the final norm (released hidden_states[-1])
        hidden = out.gather(-1, ACTION_TOKEN).view(b, s, k, -1)  # eq. (2)
        return self.action_mapper(hidden.to(self.action_mapper[0].weight.dtype))

    def trainable_modules(self, stage: str) -> list[nn.Module | nn.Parameter]:
        """What trains in ``stage`` (train_ds.py / Sec. 3.3): stage 1 the state encoder, action token and mapper;
        stage 2 also the action decoder and the language model (vision tower and projector stay frozen);
        freeze_vlm the action modules only."""
        parts: list = [self.state_encoder, self.action_token, self.action_mapper]
        if stage != "align":
            parts.append(self.action_head)
        if stage in ("finetune", "only_finetune"):
            parts.append(self.backbone.decoder)
        return parts


def teacher_state_renormalizer(
    config: VitaVlaConfig, tcfg: SeerConfig, dataset_stats: dict | None
) -> Renormalizer:
    """The student's normalised ``observation.state`` -> the state the teacher's own normaliser produces.

    The batch is normalised for the student (its ``normalization_mapping`` and this run's dataset statistics). A
    converted released Seer reads the raw state (IDENTITY, as the released training feeds it); a LeRobot-trained
    teacher its own saved statistics. Each gets what it expects; a side that needs statistics it lacks is refused
    (``ConfigError`` naming both sides).
    """
    student = FeatureNormaliser(
        "the vita_vla student (this run's dataset statistics)",
        OBS_STATE,
        config.robot_state_feature,
        config.normalization_mapping.get("STATE", NormalizationMode.IDENTITY),
        feature_stats(dataset_stats, OBS_STATE),
    )
    target = FeatureNormaliser(
        f"the seer teacher at {config.teacher_path}",
        OBS_STATE,
        tcfg.robot_state_feature,
        tcfg.normalization_mapping.get("STATE", NormalizationMode.IDENTITY),
        saved_normalizer_stats(config.teacher_path, OBS_STATE),
    )
    return Renormalizer(student, target)


def load_teacher(path: str) -> SeerPolicy:
    """The trained ``seer`` policy at ``path``, frozen, in eval mode."""
    from lerobot_policy_seer.modeling_seer import SeerPolicy

    teacher = SeerPolicy.from_pretrained(path)
    teacher.requires_grad_(False)
    return teacher.eval()


class VitaVlaPolicy(PreTrainedPolicy):
    """LeRobot policy around ``VitaVlaModel``. In the ``align`` stage it also holds the frozen teacher, outside its
    own module tree (not saved, not optimised, not switched to train mode) but moved with it between devices."""

    config_class = VitaVlaConfig
    name = "vita_vla"
    # FSDP units under LeRobot 0.6.2's --parallelism.dp_shard: the Qwen2 decoder layers of its InternVL LLM
    _fsdp_wrap_modules = QWEN2_WRAP_MODULES

    def __init__(self, config: VitaVlaConfig, *, weightless: bool = False, **kwargs):
        """``weightless=True``: random weights for parameter counts and benchmarks (built inside
        ``weightless_pretrained``): the released Hub id is accepted and no teacher or trained checkpoint is required."""
        super().__init__(config)
        config.validate_features()
        self.config = config
        self._check_stage_inputs(weightless)
        teacher = None
        fresh = config.pretrained_path is None
        if config.teacher_path and fresh and config.stage in ("align", "only_finetune"):
            # a fresh model takes the teacher's decoder; from a checkpoint the decoder is in the checkpoint and the
            # stage-1 teacher is loaded at the first training step (never for inference)
            teacher = load_teacher(config.teacher_path)
            self._check_teacher(teacher)
        self.model = VitaVlaModel(config, weightless)
        if teacher is not None and fresh:
            # the teacher's decoder and heads become ours (Sec. 3.2: "reused from the small action model")
            self.model.action_head.load_state_dict(teacher.model.action_head.state_dict())
        object.__setattr__(self, "_teacher", teacher if config.stage == "align" else None)
        # stage 1 feeds the teacher the state its own normaliser expects: checked when the teacher is attached
        # (now for a fresh model, at the first training step when resuming; inference never needs it)
        self._dataset_stats = kwargs.get("dataset_stats")
        self._teacher_state: Renormalizer | None = None
        if self._teacher is not None:
            self._teacher_state = teacher_state_renormalizer(config, teacher.config, self._dataset_stats)
        self.set_stage(config.stage)
        self.reset()
        if config.compile_model:
            compile_repeated_blocks(self.model, config.compile_mode)

    def _check_stage_inputs(self, weightless: bool) -> None:
        cfg = self.config
        needs_teacher = cfg.stage == "align" or (cfg.stage == "only_finetune" and cfg.pretrained_path is None)
        if needs_teacher and not cfg.teacher_path and not weightless:
            raise ValueError(
                f"vita_vla: stage={cfg.stage!r} needs the trained Seer teacher: pass --policy.teacher_path=<seer checkpoint "
                "directory> (e.g. outputs/train/seer/checkpoints/last/pretrained_model)"
            )
        if cfg.stage in ("finetune", "freeze_vlm") and cfg.pretrained_path is None and not weightless:
            raise ValueError(
                f"vita_vla: stage={cfg.stage!r} continues a trained VITA-VLA: pass --policy.path=<align (or two-stage) "
                "checkpoint>; to fine-tune without alignment use --policy.stage=only_finetune --policy.teacher_path=<seer>"
            )

    def _check_teacher(self, teacher: SeerPolicy) -> None:
        tcfg = teacher.config
        self.config.check_teacher_config({**_config_dict(tcfg), "type": "seer"})
        missing = [k for k in tcfg.camera_keys if k not in self.config.image_features]
        if missing:
            raise ValueError(
                f"vita_vla: the teacher reads cameras {missing} that this dataset does not have ({self.config.camera_keys})"
            )
        if tcfg.robot_state_feature.shape != self.config.robot_state_feature.shape:
            raise ValueError(
                f"vita_vla: the teacher was trained on a {tcfg.robot_state_feature.shape[0]}-D state, this dataset's is "
                f"{self.config.robot_state_feature.shape[0]}-D"
            )

    @property
    def teacher(self) -> SeerPolicy | None:
        return self._teacher

    @classmethod
    def from_pretrained(
        cls, pretrained_name_or_path: str | Path, *, config: VitaVlaConfig | None = None, **kwargs
    ) -> VitaVlaPolicy:
        """As ``PreTrainedPolicy.from_pretrained``, recording the checkpoint as ``config.pretrained_path`` (LeRobot's
        CLIs do the same) so the stages that continue a checkpoint know they start from one."""
        from lerobot.configs.policies import PreTrainedConfig

        if config is None:
            hub = (
                "force_download",
                "resume_download",
                "proxies",
                "token",
                "cache_dir",
                "local_files_only",
                "revision",
            )
            config = PreTrainedConfig.from_pretrained(
                pretrained_name_or_path, **{k: kwargs[k] for k in hub if k in kwargs}
            )
        if config.pretrained_path is None:
            config.pretrained_path = Path(str(pretrained_name_or_path))
        return super().from_pretrained(pretrained_name_or_path, config=config, **kwargs)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if getattr(self, "_teacher", None) is not None:
            self._teacher._apply(fn, recurse)
        return self

    def set_stage(self, stage: str) -> None:
        """Freeze everything, then unfreeze what ``stage`` trains."""
        self.requires_grad_(False)
        for part in self.model.trainable_modules(stage):
            part.requires_grad_(True)

    def get_optim_params(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def reset(self) -> None:
        cfg = self.config
        rule = ActionRule(
            pad_history=cfg.pad_history,
            action_index=cfg.executed_action,
            temporal_ensemble=cfg.temporal_ensemble,
            ensemble_temperature=cfg.ensemble_temperature,
        )
        # per frame: its image tokens (B, V, 49, D) and state (B, D_s)
        self._history = HistoryLoop(cfg.history_length, cfg.action_pred_steps, rule)

    # ------------------------------------------------------------------ training
    def _ensure_teacher(self):
        if self._teacher is None:
            if not self.config.teacher_path:
                raise ValueError(
                    "vita_vla: stage='align' needs --policy.teacher_path=<seer checkpoint directory>"
                )
            teacher = load_teacher(self.config.teacher_path)
            self._check_teacher(teacher)
            device = next(self.model.parameters()).device
            self._teacher_state = teacher_state_renormalizer(self.config, teacher.config, self._dataset_stats)
            object.__setattr__(self, "_teacher", teacher.to(device))
        return self._teacher

    def forward(self, batch: dict) -> tuple[Tensor, dict]:
        cfg = self.config
        steps = build_step_batch(batch, cfg.camera_keys, cfg.history_length, cfg.action_pred_steps)
        texts = task_strings(batch, steps.state.shape[0], "vita_vla")
        mapped = self.model(steps.images, steps.state, texts)  # (B, S, K, D_t)
        if cfg.stage == "align":
            teacher = self._ensure_teacher()
            views = [cfg.camera_keys.index(k) for k in teacher.config.camera_keys]
            with torch.no_grad():  # the teacher's own preprocessing of the same batch
                pixels = teacher.model.preprocess(steps.images[:, :, views])
                state = self._teacher_state(steps.state)  # the state the teacher's own normaliser gives
                target = teacher.model(pixels, state, texts).action_features
            loss = align_loss(mapped, target, steps.step_valid, cfg.align_loss)
            return loss, {"align_loss": loss.item()}
        arm, gripper_logit = self.model.action_head(mapped)
        arm_loss, gripper_loss = action_losses(
            arm, gripper_logit, steps.arm_target, steps.gripper_target, steps.action_valid, cfg.arm_loss
        )
        # L_total = L_arm + lambda * L_gripper (Sec. 3.3), the gripper term included
        loss = cfg.arm_loss_weight * arm_loss + cfg.gripper_loss_weight * gripper_loss
        return loss, {"arm_loss": arm_loss.item(), "gripper_loss": gripper_loss.item()}

    # ------------------------------------------------------------------ inference
    def _model_space_chunk(self, batch: dict) -> Tensor:
        images = torch.stack([batch[k] for k in self.config.camera_keys], dim=1)  # (B, V, 3, H, W)
        state = batch[OBS_STATE]
        if images.dim() != 5 or state.dim() != 2:
            raise ValueError(
                f"vita_vla: select_action expects one observation per env (cameras (B, 3, H, W), state (B, D)); got "
                f"{tuple(images.shape)} and {tuple(state.shape)}"
            )
        texts = task_strings(batch, state.shape[0], "vita_vla")
        # the image tokens of a frame do not change (frozen tower): each frame is encoded once
        frame = (self.model.encode_images(images.unsqueeze(1))[:, 0], state)
        return self._history.chunk(frame, lambda tokens, states: self._predict_last(tokens, states, texts))

    def _predict_last(self, tokens: Tensor, states: Tensor, texts: list[str]) -> Tensor:
        """Image tokens (B, n, V, 49, D) and states (B, n, D_s) of the window's n turns -> the (B, K, A) chunk of
        the last turn (arm in [-1, 1], gripper probability)."""
        mapped = self.model(tokens, states, texts)[:, -1]  # (B, K, D_t)
        arm, gripper_logit = self.model.action_head(mapped)
        return torch.cat((arm, torch.sigmoid(gripper_logit)), dim=-1).float()

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict, **kwargs) -> Tensor:
        """The K actions predicted at this step, (B, K, A) (normalised)."""
        self.eval()
        return gripper_to_action(self._model_space_chunk(batch), self.config.binarize_gripper)

    @torch.no_grad()
    def select_action(self, batch: dict, **kwargs) -> Tensor:
        """One (B, A) action per step under the released VITA-VLA rule (``lerobot_policy_seer.inference``): by default
        CALVIN's (history padded to S with the last frame, the last turn's action ``executed_action`` = 1); with
        ``pad_history=false temporal_ensemble=true`` LIBERO's. The VLM runs every step."""
        self.eval()
        action = self._history.action(self._model_space_chunk(batch))
        return gripper_to_action(action, self.config.binarize_gripper)


def _config_dict(cfg) -> dict:
    return {
        "hidden_dim": cfg.hidden_dim,
        "history_length": cfg.history_length,
        "action_pred_steps": cfg.action_pred_steps,
        "output_features": {k: {"shape": list(f.shape)} for k, f in cfg.output_features.items()},
    }
