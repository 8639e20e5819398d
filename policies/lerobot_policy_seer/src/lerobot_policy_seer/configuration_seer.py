"""Configuration of Seer (Tian et al. 2024, "Predictive Inverse Dynamics Models are Scalable Learners for Robotic
Manipulation"), the small action model VITA-VLA distils from.

Defaults are the paper-size model: ``size="base"`` is the released Seer (384 wide, 24 GPT-2 layers, 12 heads,
6 resampler queries and 9 foresight tokens per image), ``size="large"`` Seer-Large (1024, 24, 16, 16, 16; the
1024-wide teacher of VITA-VLA on CALVIN). History and horizon follow the released CALVIN scripts (10 past
steps, 3 future actions per step, foresight image at t+3); LIBERO used 7 (``--policy.history_length=7``).

State and action layout. The paper's robots have a 6-D arm + 1-D gripper (7-D state and action). The last
action dimension is always the gripper (a sigmoid/BCE output); the others are the arm (tanh/Smooth-L1). The
state is split into an arm part and ``gripper_state_dim`` trailing gripper dims, encoded as the released code
does: ``one_hot`` (a binary open/closed command, CALVIN) or ``width`` (raw gripper opening, LIBERO's 2-D qpos
with ``--gripper_width``). Left at None, both are chosen from the dataset's state size: 7 -> 6+1 one-hot
(CALVIN, the paper), 8 -> 6+2 width (LIBERO), anything else -> (S-1)+1 width (Meta-World's 4-D state is hand
xyz + a continuous gripper opening; its 4-D action is xyz delta + gripper).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig
from lerobot.utils.constants import ACTION, OBS_STATE

from lerobot_vla_plugins.errors import ConfigError

#: Released sizes: (hidden_dim, num_layers, num_heads, num_resampler_queries, num_foresight_tokens per image).
#: base: OpenRobotLab/Seer scripts/*/Seer/finetune.sh (+ arguments_utils defaults); large: Seer-Large/finetune.sh.
SEER_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "base": (384, 24, 12, 6, 9),
    "large": (1024, 24, 16, 16, 16),
}
GRIPPER_STATE_MODES = ("one_hot", "width")


def resolve_gripper_state(
    state_dim: int, mode: str | None, dim: int | None, owner: str = "seer"
) -> tuple[str, int]:
    """The gripper-state encoding and the number of trailing gripper dims for a ``state_dim``-D state.

    None picks by size: 7 -> one_hot over 1 dim (CALVIN: 6-D arm + gripper command, the paper), 8 -> width over
    2 dims (LIBERO: 6-D eef pose + 2-D gripper qpos), otherwise width over 1 dim (Meta-World: hand xyz + opening).

    Raises:
        ValueError: an explicit choice that does not fit the state.
    """
    if mode is not None and mode not in GRIPPER_STATE_MODES:
        raise ValueError(
            f"{owner}: gripper_state_mode={mode!r} is unknown; choose one of {GRIPPER_STATE_MODES}"
        )
    if dim is None:
        dim = 2 if (state_dim == 8 and mode != "one_hot") else 1
    if mode is None:
        mode = "one_hot" if (state_dim == 7 and dim == 1) else "width"
    if not 0 < dim < state_dim:
        raise ValueError(
            f"{owner}: gripper_state_dim={dim} leaves no arm dims in the {state_dim}-D state; pass a value in [1, {state_dim - 1}]"
        )
    if mode == "one_hot" and dim != 1:
        raise ValueError(
            f"{owner}: gripper_state_mode='one_hot' encodes one binary gripper value but gripper_state_dim={dim}; "
            "pass --policy.gripper_state_dim=1 or --policy.gripper_state_mode=width"
        )
    return mode, dim


@PreTrainedConfig.register_subclass("seer")
@dataclass
class SeerConfig(PreTrainedConfig):
    # Model size: "base" (Seer) or "large" (Seer-Large). The five fields below default to the size's values.
    size: str = "base"
    hidden_dim: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_resampler_queries: int | None = None
    # [FRS] foresight tokens per camera view; a perfect square (they get a 2-D sin-cos grid in the image decoder).
    num_foresight_tokens: int | None = None

    # Past steps the trunk sees (LeRobot observation_delta_indices -(S-1)..0): CALVIN 10, LIBERO 7.
    history_length: int = 10
    # Future actions predicted per step by the [INV] queries (the paper's 3).
    action_pred_steps: int = 3
    # The foresight image is the frame this many steps ahead (released future_steps).
    foresight_step: int = 3

    # Frozen encoders (native transformers): MAE ViT-B/16 for images, CLIP ViT-B/32's text tower for language.
    vision_encoder_name: str = "facebook/vit-mae-base"
    text_encoder_name: str = "openai/clip-vit-base-patch32"
    text_max_length: int = 77
    # Resize the camera frames in the preprocessor to this square size with PIL on uint8 frames, as the released
    # CLIP preprocess does (224; lerobot-seer-convert sets it); None: the model resizes them (torch bicubic with
    # antialias, faster, within about one grey level: docs/parity.md).
    pil_image_size: int | None = None
    # Flamingo perceiver resampler over the MAE patch tokens (released: depth 3, 8 heads of 64).
    resampler_depth: int = 3
    resampler_heads: int = 8
    resampler_head_dim: int = 64
    # Foresight image decoder: 2 ViT blocks with 16 heads (released).
    image_decoder_depth: int = 2
    image_decoder_heads: int = 16

    gripper_state_mode: str | None = None
    gripper_state_dim: int | None = None

    # Loss weights (released train_utils: 1.0 Smooth-L1 arm + 0.01 BCE gripper + 0.1 image).
    arm_loss_weight: float = 1.0
    gripper_loss_weight: float = 0.01
    foresight_loss_weight: float = 0.1
    # Training-only random shift of each view in pixels at the encoder's input size (released RandomShiftsAug
    # rgb_pad 10 / gripper_pad 4, the same shift over a sample's frames): one value per view, extra views reuse
    # the last value, 0 or [] disables.
    random_shift_pads: list[int] = field(default_factory=lambda: [10, 4])

    # Inference: average the overlapping 3-step predictions with weights exp(-temperature * i), i = 0 for the
    # oldest (released LIBERO evaluation); off = execute the first predicted action (released CALVIN evaluation).
    temporal_ensemble: bool = False
    ensemble_temperature: float = 0.01
    # Map the gripper probability to -1/+1 at 0.5 (released evaluation); otherwise 2p - 1.
    binarize_gripper: bool = True
    # torch.compile the policy's repeated blocks (vision/decoder layers, head blocks) in place; compile_mode is
    # torch.compile's mode ("reduce-overhead" adds CUDA graphs on a GPU). Same outputs up to float tolerance.
    # lerobot_vla_plugins.speed.compile.
    compile_model: bool = False
    compile_mode: str = "default"

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.MEAN_STD,
            # tanh arm / sigmoid gripper outputs: actions are scaled to [-1, 1]
            "ACTION": NormalizationMode.MIN_MAX,
        }
    )

    # Released fine-tuning: AdamW lr 1e-3, weight decay 1e-4, cosine schedule with warmup, grad-norm clip 0.1.
    optimizer_lr: float = 1e-3
    optimizer_betas: tuple[float, float] = (0.9, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-4
    optimizer_grad_clip_norm: float = 0.1
    scheduler_warmup_steps: int = 1000
    scheduler_decay_steps: int = 100_000
    scheduler_decay_lr: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        from lerobot_vla_plugins.speed.compile import check_compile_mode

        check_compile_mode("seer", self.compile_mode)
        if self.size not in SEER_SIZES:
            raise ConfigError(f"seer: size={self.size!r} is unknown; choose one of {sorted(SEER_SIZES)}")
        defaults = dict(
            zip(
                ("hidden_dim", "num_layers", "num_heads", "num_resampler_queries", "num_foresight_tokens"),
                SEER_SIZES[self.size],
                strict=False,
            )
        )
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in (*defaults, "history_length", "action_pred_steps", "foresight_step", "resampler_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"seer: {name} must be >= 1, got {getattr(self, name)}")
        if self.pil_image_size is not None and self.pil_image_size < 1:
            raise ConfigError(
                f"seer: pil_image_size must be >= 1 (224 = the released CLIP preprocess) or None, got {self.pil_image_size}"
            )
        if self.hidden_dim % self.num_heads:
            raise ConfigError(
                f"seer: hidden_dim={self.hidden_dim} is not divisible by num_heads={self.num_heads}"
            )
        if self.hidden_dim % self.image_decoder_heads:
            raise ConfigError(
                f"seer: hidden_dim={self.hidden_dim} is not divisible by image_decoder_heads={self.image_decoder_heads}"
            )
        if self.hidden_dim % 4:
            raise ConfigError(
                f"seer: hidden_dim={self.hidden_dim} must be a multiple of 4 (2-D sin-cos embedding)"
            )
        if round(self.num_foresight_tokens**0.5) ** 2 != self.num_foresight_tokens:
            raise ConfigError(
                f"seer: num_foresight_tokens={self.num_foresight_tokens} must be a perfect square (4, 9, 16, ...)"
            )
        if self.gripper_state_mode is not None and self.gripper_state_mode not in GRIPPER_STATE_MODES:
            raise ConfigError(
                f"seer: gripper_state_mode={self.gripper_state_mode!r} is unknown; choose one of {GRIPPER_STATE_MODES}"
            )
        if any(p < 0 for p in self.random_shift_pads):
            raise ConfigError(f"seer: random_shift_pads must be >= 0, got {self.random_shift_pads}")
        if self.ensemble_temperature < 0:
            raise ConfigError(f"seer: ensemble_temperature must be >= 0, got {self.ensemble_temperature}")

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError(
                "seer: needs at least one camera (an observation.image* feature); the dataset has none"
            )
        if self.robot_state_feature is None:
            raise ValueError(f"seer: needs the robot state '{OBS_STATE}'; the dataset has none")
        if self.action_feature is None or self.action_feature.shape[0] < 2:
            raise ValueError(
                f"seer: needs an '{ACTION}' of at least 2 dims (arm + gripper, the gripper last)"
            )
        for key, feature in self.image_features.items():
            if feature.type is not FeatureType.VISUAL or len(feature.shape) != 3:
                raise ValueError(f"seer: camera {key} must be a (3, H, W) image, got {feature.shape}")
        self.gripper_state_mode, self.gripper_state_dim = resolve_gripper_state(
            self.robot_state_feature.shape[0], self.gripper_state_mode, self.gripper_state_dim
        )

    @property
    def camera_keys(self) -> list[str]:
        """Camera keys in input order: view 0 is the primary (static) camera, view 1 the wrist camera."""
        return list(self.image_features)

    @property
    def arm_action_dim(self) -> int:
        return self.action_feature.shape[0] - 1

    def shift_pad(self, view: int) -> int:
        pads = self.random_shift_pads
        return pads[min(view, len(pads) - 1)] if pads else 0

    @property
    def observation_delta_indices(self) -> list[int]:
        # the S past steps, then (when the foresight loss is on) the frames up to t + foresight_step as its labels
        future = self.foresight_step if self.foresight_loss_weight > 0 else 0
        return list(range(1 - self.history_length, 1 + future))

    @property
    def action_delta_indices(self) -> list[int]:
        # step s of the history is supervised with the actions s .. s + action_pred_steps - 1
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
