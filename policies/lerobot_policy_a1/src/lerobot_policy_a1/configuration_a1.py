"""Configuration of A1 (``--policy.type=a1``): paper: "A1: A Fully Transparent Open-Source, Adaptive and Efficient
Truncated Vision-Language-Action Model" (arXiv 2604.05672); released code github.com/ATeam-Research/A1.

Defaults are the paper's full-size model: Molmo-7B-style backbone (CLIP ViT-L/14-336 + 2x2 attention pooling +
connector + Qwen2-7B, 28 layers), the flow-matching expert of the released training CLI (Qwen2 decoder, hidden 1024,
28 layers, 8 heads, 4 KV heads, intermediate 2048: ~271M parameters without an LM head), action chunk 8 (paper
section 5.2 and Fig. 4), multi-exit training over all layers, exits every 2 layers with the cosine discrepancy,
and inter-layer truncated flow matching with 2 denoising steps per exit (Table 6, row "1.0, 2*"). Optimiser:
paper Tables 8-9 (AdamW, VLM 5e-6, action head 5e-5, ViT frozen, 2000 warm-up steps, VLM frozen for the first
1000, cosine decay) with the released code's betas (0.9, 0.95), eps 1e-6, no weight decay, clip 1.0 and a final
LR of 10% (``CosWithWarmup`` alpha_f 0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import LRSchedulerConfig
from lerobot.policies.rtc.configuration_rtc import RTCConfig
from lerobot.utils.constants import OBS_STATE

from lerobot_vla_plugins.errors import ConfigError

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler

HEADS = ("flow_matching", "mlp")
EXIT_TRAINING = ("none", "random", "all")
EXIT_DISCREPANCY_DIMS = ("action", "padded")
EXIT_WARM_START_CHAINS = ("reference", "released")


@PreTrainedConfig.register_subclass("a1")
@dataclass
class A1Config(PreTrainedConfig):
    # ------------------------------------------------------------------ inputs / outputs
    n_obs_steps: int = 1
    # Action chunk T predicted per query and how many of its actions are executed before the next query.
    chunk_size: int = 8
    n_action_steps: int = 8
    # State and actions are zero-padded to these sizes (released A1: fixed_action_dim 32); the losses only
    # count the real dimensions.
    max_state_dim: int = 32
    max_action_dim: int = 32
    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            # released A1: q01/q99 bounds to [-1, 1] for proprio and actions (BOUNDS_Q99)
            "STATE": NormalizationMode.QUANTILES,
            "ACTION": NormalizationMode.QUANTILES,
        }
    )

    # ------------------------------------------------------------------ backbone
    # Family of the shared core (lerobot_vla_plugins.backbones.BACKBONE_FAMILIES): "molmo" (the paper's),
    # "internvl" or "prismatic"; users without 7B weights can train A1 on any of them.
    backbone_family: str = "molmo"
    # For "molmo": a converted Molmo-7B-D / saved MolmoBackbone directory, or "<clip id>+<qwen2 id>" (pretrained
    # parts, new connector). For "internvl"/"prismatic": that family's checkpoint id or directory.
    vlm_name: str = "openai/clip-vit-large-patch14-336+Qwen/Qwen2-7B"
    # Keep only the first k language-model layers (None: all).
    vlm_num_layers: int | None = None
    vlm_dtype: str = "float32"
    # Recompute the language model's layers in the backward pass instead of storing their activations (the 7B
    # recipe turns it on: docs/training_at_scale.md). Outputs and gradients are unchanged.
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    # torch.compile the policy's repeated blocks (vision/decoder layers, head blocks) in place; compile_mode is
    # torch.compile's mode ("reduce-overhead" adds CUDA graphs on a GPU). Same outputs up to float tolerance.
    # lerobot_vla_plugins.speed.compile.
    compile_model: bool = False
    compile_mode: str = "default"
    # Molmo's "role" message format with A1's empty system prompt for the "action" style; the instruction is
    # lower-cased as the released RLDS pipeline does.
    prompt_template: str = " User: {instruction} Assistant:"
    # Train the vision encoder and the connector (paper: ViT frozen; released: connector frozen too).
    train_vision_encoder: bool = False
    train_language_model: bool = True

    # ------------------------------------------------------------------ heads
    head: str = "flow_matching"
    # Flow-matching expert: a Qwen2 decoder whose layer i attends to the backbone's layer-i keys/values.
    # None: the backbone's depth / KV-head count (so that the expert's attention reads the VLM cache directly).
    expert_hidden_size: int = 1024
    expert_num_layers: int | None = None
    expert_num_heads: int = 8
    expert_num_kv_heads: int | None = None
    expert_intermediate_size: int = 2048
    # Qwen2Config's default, which the released expert keeps.
    expert_rope_theta: float = 10000.0
    # Position of the expert's first suffix token. None: each sample's valid prefix length (its output does not
    # depend on how its batch is padded). An int N: N, as the released "2d_attn_mask" head, which numbers the
    # suffix after the whole prompt padded to the checkpoint's data.sequence_length (600 for LIBERO); converted
    # checkpoints set it from config.yaml, and a prompt longer than N is refused as the released collator does.
    expert_position_offset: int | None = None
    # Euler steps at full depth (released train CLI --action_head_diffusion_inference_steps 10).
    num_inference_steps: int = 10
    # MLP head: query tokens per chunk step appended to the prompt (released: 7, one per x, y, z, roll, pitch,
    # yaw, gripper) and read from the last layer by an MLP-ResNet (hidden = backbone width).
    mlp_tokens_per_step: int = 7
    # Probability of zeroing the whole state of a training sample (paper: 0.5 pre-training, 0.0 LIBERO).
    state_mask_prob: float = 0.0

    # ------------------------------------------------------------------ multi-exit training (section 3.3)
    # "none": loss at the last layer; "random": at one layer drawn uniformly per step (the same layer on every
    # process), the backbone stops there; "all": the loss averaged over the heads at every layer.
    exit_training: str = "all"

    # ------------------------------------------------------------------ adaptive inference (3.3.1 - 3.3.2)
    # Use the calibrated exit thresholds stored with the checkpoint (lerobot-a1-calibrate); without them, or
    # with false, every query runs at full depth with num_inference_steps Euler steps.
    use_early_exit: bool = True
    # Exits at layers 1, 1 + interval, ... plus the last (0-based), compared by this discrepancy metric.
    exit_interval: int = 2
    exit_metric: str = "cosine"
    # Euler steps per exit (delta) and whether each exit starts from the previous exit's chunk (eq. 10);
    # paper Table 6: "1.0, 10" = (10, false), "1.0, 2" = (2, false), "1.0, 2*" = (2, true).
    exit_fm_steps: int = 2
    exit_warm_start: bool = True
    # Which chunk each warm-started prediction starts from (with exit_warm_start):
    # "reference": exit 1 from this query's layer-0 reference, which starts from the previous query's chunk;
    #   later exits from the previous exit (calibration and run time follow the same chain);
    # "released": the released eval (ActionValueNet(anchor=True)): the layer-0 reference from fresh noise, exit 1
    #   from the previous query's chunk (fresh noise on an episode's first query), later exits from the previous
    #   exit; calibration chains reference -> exits (released generate_action_values). Converted checkpoints.
    exit_warm_start_chain: str = "reference"
    # Action dims the discrepancy (eq. 6) is measured over: "action", the real dims (the paper's A_t in R^{H x D});
    # "padded", all max_action_dim dims incl. the untrained padding, as the released ActionValueNet (converted
    # checkpoints).
    exit_discrepancy_dims: str = "action"

    # ------------------------------------------------------------------ pre/post-processing (processor_a1.py)
    # Clip the normalised state to [-1, 1] (released BOUNDS_Q99 normalize_proprio; converted checkpoints).
    clip_normalized_state: bool = False
    # The released LIBERO checkpoints predict the gripper (last action dim) as 1 = open / 0 = close, not
    # normalised; true binarises it and emits LeRobot LIBERO's -1 = open / +1 = close (released eval:
    # normalize_gripper_action(binarize=True), then invert_gripper_action).
    libero_gripper: bool = False

    # ------------------------------------------------------------------ real-time chunking
    # Set by lerobot-rollout --inference.type=rtc (then init_rtc_processor()); None: no RTC guidance.
    rtc_config: RTCConfig | None = None

    # ------------------------------------------------------------------ optimiser and schedule
    optimizer_lr: float = 5e-5
    optimizer_vlm_lr: float = 5e-6
    optimizer_vision_lr: float = 2e-6
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    optimizer_eps: float = 1e-6
    optimizer_weight_decay: float = 0.0
    optimizer_grad_clip_norm: float = 1.0
    scheduler_warmup_steps: int = 2000
    scheduler_vlm_freeze_steps: int = 1000
    scheduler_final_lr_ratio: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        from lerobot_vla_plugins.speed.compile import check_compile_mode

        check_compile_mode("a1", self.compile_mode)
        from lerobot_vla_plugins.adaptive import check_metric
        from lerobot_vla_plugins.backbones import BACKBONE_FAMILIES

        def need(cond: bool, msg: str):
            if not cond:
                raise ConfigError(f"a1: {msg}")

        need(self.head in HEADS, f"head={self.head!r} is not one of {list(HEADS)}")
        need(
            self.exit_training in EXIT_TRAINING,
            f"exit_training={self.exit_training!r} is not one of {list(EXIT_TRAINING)}",
        )
        need(
            self.backbone_family in BACKBONE_FAMILIES,
            f"backbone_family={self.backbone_family!r} is not one of {sorted(BACKBONE_FAMILIES)}",
        )
        try:
            check_metric(self.exit_metric)
        except ValueError as err:
            raise ConfigError(f"a1: exit_metric: {err}") from None
        need(self.chunk_size >= 1, f"chunk_size must be >= 1, got {self.chunk_size}")
        need(
            1 <= self.n_action_steps <= self.chunk_size,
            f"n_action_steps ({self.n_action_steps}) must be in [1, chunk_size={self.chunk_size}]",
        )
        need(
            self.n_obs_steps == 1,
            f"n_obs_steps must be 1 (A1 conditions on the current frame), got {self.n_obs_steps}",
        )
        need(
            self.expert_hidden_size % self.expert_num_heads == 0,
            f"expert_hidden_size ({self.expert_hidden_size}) must be divisible by expert_num_heads ({self.expert_num_heads})",
        )
        need(
            (self.expert_hidden_size // self.expert_num_heads) % 2 == 0,
            "the expert's head dim must be even (rotary)",
        )
        need(self.expert_hidden_size % 2 == 0, "expert_hidden_size must be even (sinusoidal time embedding)")
        for name in (
            "num_inference_steps",
            "exit_fm_steps",
            "exit_interval",
            "mlp_tokens_per_step",
            "max_state_dim",
            "max_action_dim",
        ):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(
            self.exit_warm_start_chain in EXIT_WARM_START_CHAINS,
            f"exit_warm_start_chain={self.exit_warm_start_chain!r} is not one of {list(EXIT_WARM_START_CHAINS)}",
        )
        need(
            self.exit_discrepancy_dims in EXIT_DISCREPANCY_DIMS,
            f"exit_discrepancy_dims={self.exit_discrepancy_dims!r} is not one of {list(EXIT_DISCREPANCY_DIMS)}",
        )
        need(
            self.expert_position_offset is None or self.expert_position_offset >= 1,
            f"expert_position_offset must be None or >= 1, got {self.expert_position_offset}",
        )
        need(
            0.0 <= self.state_mask_prob < 1.0,
            f"state_mask_prob must be in [0, 1), got {self.state_mask_prob}",
        )
        need("{instruction}" in self.prompt_template, "prompt_template must contain '{instruction}'")
        need(
            self.vlm_dtype in ("float32", "bfloat16", "float16"),
            f"vlm_dtype={self.vlm_dtype!r}: use float32, bfloat16 or float16",
        )
        need(0.0 <= self.scheduler_final_lr_ratio <= 1.0, "scheduler_final_lr_ratio must be in [0, 1]")
        need(
            self.scheduler_warmup_steps >= 0 and self.scheduler_vlm_freeze_steps >= 0,
            "scheduler step counts must be >= 0",
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

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError(
                "a1: no image feature among the inputs; A1 needs at least one camera (observation.image or "
                "observation.images.<name>)"
            )
        if self.action_feature is None:
            raise ValueError("a1: the dataset has no 'action' feature to learn")
        a = self.action_feature.shape[0]
        if a > self.max_action_dim:
            raise ValueError(
                f"a1: action has {a} dims but max_action_dim={self.max_action_dim}; raise --policy.max_action_dim"
            )
        state = self.input_features.get(OBS_STATE)
        if state is not None and state.shape[0] > self.max_state_dim:
            raise ValueError(
                f"a1: observation.state has {state.shape[0]} dims but max_state_dim={self.max_state_dim}; raise --policy.max_state_dim"
            )
        for key, ft in self.input_features.items():
            if ft.type is FeatureType.STATE and key != OBS_STATE:
                raise ValueError(
                    f"a1: state input {key!r} is not supported; rename it to {OBS_STATE!r} with --rename_map"
                )

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(
            lr=self.optimizer_lr,
            betas=self.optimizer_betas,
            eps=self.optimizer_eps,
            weight_decay=self.optimizer_weight_decay,
            grad_clip_norm=self.optimizer_grad_clip_norm,
        )

    def get_scheduler_preset(self) -> A1SchedulerConfig:
        return A1SchedulerConfig(
            num_warmup_steps=self.scheduler_warmup_steps,
            vlm_freeze_steps=self.scheduler_vlm_freeze_steps,
            final_lr_ratio=self.scheduler_final_lr_ratio,
        )


@LRSchedulerConfig.register_subclass("a1_cosine_with_vlm_freeze")
@dataclass
class A1SchedulerConfig(LRSchedulerConfig):
    """A1's schedule (paper Table 8; released ``CosWithWarmup``): every group warms up linearly over
    ``num_warmup_steps`` then follows a cosine from its peak LR to ``final_lr_ratio`` x peak at the last step; the
    VLM groups (``"a1_group": "vlm"`` or ``"vision"``) additionally stay at LR 0 for the first ``vlm_freeze_steps``.
    """

    num_warmup_steps: int = 2000
    vlm_freeze_steps: int = 1000
    final_lr_ratio: float = 0.1

    def lr_factor(self, step: int, total_steps: int, frozen: bool) -> float:
        if frozen and step < self.vlm_freeze_steps:
            return 0.0
        if step < self.num_warmup_steps:
            return step / max(1, self.num_warmup_steps)
        progress = min(1.0, (step - self.num_warmup_steps) / max(1, total_steps - self.num_warmup_steps))
        return self.final_lr_ratio + (1 - self.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def build(self, optimizer: Optimizer, num_training_steps: int) -> LRScheduler:
        from torch.optim.lr_scheduler import LambdaLR

        lambdas = [
            (
                lambda step, frozen=(g.get("a1_group") in ("vlm", "vision")): self.lr_factor(
                    step, num_training_steps, frozen
                )
            )
            for g in optimizer.param_groups
        ]
        return LambdaLR(optimizer, lambdas, -1)


__all__ = ["A1Config", "A1SchedulerConfig"]
