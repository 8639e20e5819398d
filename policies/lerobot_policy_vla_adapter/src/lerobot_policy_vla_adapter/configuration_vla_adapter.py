"""Configuration of VLA-Adapter (Wang et al., "VLA-Adapter: An Effective Paradigm for Tiny-Scale
Vision-Language-Action Model"). Defaults are the paper's (Table F2, appendix F.1) and the released code's
where the paper is silent; see ``docs/vla_adapter.md``."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig
from lerobot.policies.rtc.configuration_rtc import RTCConfig

from lerobot_vla_plugins.errors import ConfigError

HEADS = ("l1", "dit")
ATTENTION_VARIANTS = ("original", "pro")
TRAINING_MODES = ("lora", "frozen", "full")
CONDITION_POSITIONS = ("paper", "released")
DIFFUSION_SCHEDULERS = ("ddim", "ddpm")
ROPE_TABLES = ("exact", "released")
GRIPPER_TO_ENV = ("none", "libero", "calvin")

DEFAULT_DINO = "facebook/dinov2-with-registers-large"
DEFAULT_SIGLIP = "google/siglip-so400m-patch14-224"
DEFAULT_LLM = "Qwen/Qwen2.5-0.5B"


@PreTrainedConfig.register_subclass("vla_adapter")
@dataclass
class VLAAdapterConfig(PreTrainedConfig):
    """VLA-Adapter: a Prismatic VLM (DINOv2 + SigLIP + Qwen2.5-0.5B) with 64 ActionQuery tokens, bridged to the
    action space by the Policy with Bridge Attention (one block per VLM layer)."""

    # --- input / output structure
    n_obs_steps: int = 1
    # Action chunk T (Table F2: 8); all of it is executed open-loop, as the released LIBERO evaluation does.
    chunk_size: int = 8
    n_action_steps: int = 8

    # --- backbone (Prismatic family). A Prismatic directory (`lerobot-vla-adapter-convert base-vlm` output, the
    # paper's prism-qwen25-extra-dinosiglip-224px-0_5b with its aligned projector, or the testing kit's tiny one).
    # When unset, the VLM is assembled from the three published parts below with a fresh projector.
    vlm_path: str | None = None
    dino_model: str = DEFAULT_DINO
    siglip_model: str = DEFAULT_SIGLIP
    llm_model: str = DEFAULT_LLM
    attn_implementation: str = "sdpa"
    # torch.compile the policy's repeated blocks (vision/decoder layers, head blocks) in place; compile_mode is
    # torch.compile's mode ("reduce-overhead" adds CUDA graphs on a GPU). Same outputs up to float tolerance.
    # lerobot_vla_plugins.speed.compile.
    compile_model: bool = False
    compile_mode: str = "default"

    # --- ActionQuery (Table F2: 64)
    num_action_queries: int = 64
    # Which hidden states are the conditions. "paper": Raw = states at the image positions, ActionQuery = states
    # at the 64 query positions. "released": the released code's selection, one position earlier for both
    # (first prompt token + the image patches but the last; last prompt token + queries 0..62); converted
    # released checkpoints set it so their outputs are reproduced.
    condition_positions: str = "paper"

    # --- policy head
    # "l1": the Policy with Bridge Attention and L1 loss (section 3.3); "dit": the DiT-based Policy (appendix B).
    head: str = "l1"
    # "pro" (default) or "original": the released code's two Bridge Attention blocks (docs/vla_adapter.md).
    attention_variant: str = "pro"
    num_heads: int = 8
    # Pro head only: "exact" float32 rotary tables, or "released": the tables the released head builds as a bf16
    # module (bf16 positions and angles; 385 distinct positions of 512). Converted released checkpoints set it.
    rope_table: str = "exact"
    # Std of the noise the released code adds to the zero initial action latent in training (L1 head).
    latent_noise_std: float = 0.02
    # DiT head only (appendix B): sampler, noise schedule and denoising steps.
    diffusion_scheduler: str = "ddim"
    num_train_timesteps: int = 50
    num_inference_steps: int = 50
    beta_schedule: str = "squaredcos_cap_v2"
    # Real-time chunking, DiT head only; lerobot-rollout --inference.type=rtc sets it (LeRobot's RTCConfig).
    rtc_config: RTCConfig | None = None

    # --- images: area fraction of a square crop resized back to the image size; training takes a random crop of
    # that area (the released RLDS augmentation), inference the centre crop (the released evaluation's
    # center_crop=True). 1.0 = no crop; converted released checkpoints set 0.9, as they were trained.
    crop_area: float = 1.0
    # --- gripper sent to the environment (postprocessor, last action dim): "none" = as predicted; "libero":
    # the released LIBERO evaluation's -sign(2g - 1) (models trained on the RLDS data predict 1 = open,
    # 0 = close; LIBERO takes -1 = open, +1 = close); "calvin": its CALVIN evaluation's sign(2g - 1), 0 -> -1.
    # The converter sets it from the dataset key of the released statistics.
    gripper_to_env: str = "none"

    # --- training mode: "lora" (paper: rank 64, alpha 128 on all linear layers of the backbone; ActionQuery,
    # proprio projector and policy trained fully), "frozen" (Table 3: backbone frozen, ActionQuery + policy
    # trained), "full" (everything trained).
    training_mode: str = "lora"
    lora_rank: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.0

    # --- normalisation: q01/q99 -> [-1, 1] with clipping (released BOUNDS_Q99), state and action. The action
    # dimensions listed here are left as they are (the released mask leaves the gripper, the last dim, as is).
    unnormalized_action_dims: list[int] = field(default_factory=lambda: [-1])
    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.QUANTILES,
            "ACTION": NormalizationMode.QUANTILES,
        }
    )

    # --- optimisation (appendix F.1: AdamW, lr 1e-4, cosine annealing, warm-up over the first tenth, 150k steps, batch 16)
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.9, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 0.01
    optimizer_grad_clip_norm: float = 10.0
    scheduler_warmup_steps: int = 15_000
    scheduler_decay_steps: int = 150_000
    scheduler_decay_lr: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        self._validate_released_conventions()
        from lerobot_vla_plugins.speed.compile import check_compile_mode

        check_compile_mode("vla_adapter", self.compile_mode)
        choices = {
            "head": (self.head, HEADS),
            "attention_variant": (self.attention_variant, ATTENTION_VARIANTS),
            "training_mode": (self.training_mode, TRAINING_MODES),
            "condition_positions": (self.condition_positions, CONDITION_POSITIONS),
            "diffusion_scheduler": (self.diffusion_scheduler, DIFFUSION_SCHEDULERS),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(
                    f"vla_adapter: {name}={value!r} is not one of {list(allowed)}; pass --policy.{name}=<one of them>"
                )
        positive = {
            "chunk_size": self.chunk_size,
            "n_action_steps": self.n_action_steps,
            "num_action_queries": self.num_action_queries,
            "num_heads": self.num_heads,
            "lora_rank": self.lora_rank,
            "num_train_timesteps": self.num_train_timesteps,
            "num_inference_steps": self.num_inference_steps,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(
                    f"vla_adapter: {name} must be >= 1, got {value}; pass --policy.{name}=<positive integer>"
                )
        if self.n_action_steps > self.chunk_size:
            raise ConfigError(
                f"vla_adapter: n_action_steps ({self.n_action_steps}) cannot exceed chunk_size ({self.chunk_size}); "
                f"pass --policy.n_action_steps<={self.chunk_size}"
            )
        if self.n_obs_steps != 1:
            raise ConfigError(
                "vla_adapter: n_obs_steps must be 1 (the model sees the current observation only)"
            )
        if self.latent_noise_std < 0:
            raise ConfigError(f"vla_adapter: latent_noise_std must be >= 0, got {self.latent_noise_std}")
        if self.num_inference_steps > self.num_train_timesteps:
            raise ConfigError(
                f"vla_adapter: num_inference_steps ({self.num_inference_steps}) cannot exceed num_train_timesteps "
                f"({self.num_train_timesteps}); lower --policy.num_inference_steps"
            )
        if self.vlm_path is not None and (
            (self.dino_model, self.siglip_model, self.llm_model)
            != (DEFAULT_DINO, DEFAULT_SIGLIP, DEFAULT_LLM)
        ):
            raise ConfigError(
                "vla_adapter: vlm_path and dino_model/siglip_model/llm_model are alternatives; a Prismatic directory "
                "(vlm_path) already contains all three parts. Pass one or the other."
            )

    def _validate_released_conventions(self) -> None:
        """RoPE tables, crop, gripper mapping and real-time chunking (see the field comments)."""
        for name, value, allowed in (
            ("rope_table", self.rope_table, ROPE_TABLES),
            ("gripper_to_env", self.gripper_to_env, GRIPPER_TO_ENV),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"vla_adapter: {name}={value!r} is not one of {list(allowed)}; pass --policy.{name}=<one of them>"
                )
        if self.rope_table == "released" and self.attention_variant != "pro":
            raise ConfigError(
                "vla_adapter: rope_table='released' applies to the Pro head's rotary positions, but "
                f"attention_variant={self.attention_variant!r} has none; drop --policy.rope_table"
            )
        if not 0.0 < self.crop_area <= 1.0:
            raise ConfigError(
                f"vla_adapter: crop_area must be in (0, 1], got {self.crop_area}; pass --policy.crop_area=0.9 "
                "(released checkpoints) or 1.0 (no crop)"
            )
        if self.rtc_config is not None and self.head != "dit":
            raise ConfigError(
                "vla_adapter: rtc_config (real-time chunking) needs head='dit'; the L1 heads regress their chunk "
                "in one pass with no denoising to guide. Drop the RTC settings or pass --policy.head=dit"
            )

    # ------------------------------------------------------------------ LeRobot contract
    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

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
            num_warmup_steps=self.scheduler_warmup_steps,
            num_decay_steps=self.scheduler_decay_steps,
            peak_lr=self.optimizer_lr,
            decay_lr=self.scheduler_decay_lr,
        )

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError(
                "vla_adapter: no camera among the input features; VLA-Adapter needs at least one image "
                "(observation.image or observation.images.<name>)"
            )
        if self.robot_state_feature is None:
            raise ValueError(
                "vla_adapter: observation.state missing from the input features; the policy conditions on "
                "proprioception (its proprio token) - add the state to the dataset or rename it with --rename_map"
            )
        if self.action_feature is None:
            raise ValueError("vla_adapter: no 'action' output feature; the dataset must have an 'action' key")
        for key, ft in self.image_features.items():
            if ft.type is not FeatureType.VISUAL or len(ft.shape) != 3 or ft.shape[0] != 3:
                raise ValueError(
                    f"vla_adapter: {key} must be an RGB image feature of shape (3, H, W), got {ft.shape}"
                )
        action_dim = self.action_feature.shape[0]
        for d in self.unnormalized_action_dims:
            if not -action_dim <= d < action_dim:
                raise ValueError(
                    f"vla_adapter: unnormalized_action_dims contains {d}, outside the {action_dim}-D action; "
                    "pass --policy.unnormalized_action_dims=[] or valid indices"
                )

    @property
    def image_keys(self) -> list[str]:
        """Camera keys in the order the views are fed to the VLM (as declared in the input features)."""
        return list(self.image_features)
