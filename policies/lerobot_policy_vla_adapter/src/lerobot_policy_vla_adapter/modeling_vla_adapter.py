"""VLA-Adapter (Wang et al. 2025): a Prismatic VLM whose per-layer Raw and ActionQuery latents condition a Policy
with Bridge Attention.

Data flow for one observation (section 3.1, Figure 3):

    images (V views) + prompt("What action should the robot take to {task}?") + 64 ActionQuery embeddings
      -> Prismatic VLM (DINOv2 + SigLIP patches after the first prompt token, queries after the prompt)
      -> for every LLM layer l = 1..L: Raw_l = states at the image positions (B, V*256, D)
                                       AQ_l  = states at the query positions (B, 64, D)
      -> Policy: block l attends over [latent; AQ_l + proprio token; tanh(g_l) * Raw_l]     (eq. (1))
      -> chunk of T normalised actions (B, T, A), trained with L1 (eq. (2)) or DDPM (appendix B)

Dimension names: B batch, T chunk, L layers, N tokens, D width, A action dim, S state dim, V views.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections import deque
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION, OBS_IMAGE, OBS_IMAGES, OBS_STATE
from torch import Tensor, nn

from lerobot_vla_plugins.backbones.prismatic import PrismaticBackbone, crop_and_resize, prismatic_prompt
from lerobot_vla_plugins.compat import QWEN2_WRAP_MODULES, is_main_process, save_with_lerobot
from lerobot_vla_plugins.heads.bridge_attention import BridgeAttentionPolicy
from lerobot_vla_plugins.heads.bridge_dit import BridgeDiTPolicy
from lerobot_vla_plugins.heads.proprio import ProprioProjector
from lerobot_vla_plugins.speed.compile import compile_repeated_blocks

from .configuration_vla_adapter import VLAAdapterConfig

logger = logging.getLogger(__name__)

#: Set while ``VLAAdapterPolicy.from_pretrained`` builds the policy: the Prismatic directory holding the
#: backbone's configs and tokenizer inside the checkpoint (its weights come from the checkpoint's
#: model.safetensors, so none are loaded while building).
_CHECKPOINT_VLM: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "vla_adapter_checkpoint_vlm", default=None
)
CHECKPOINT_VLM_DIR = "vlm"

RTC_NEEDS_DIT = (
    "vla_adapter: real-time chunking (--inference.type=rtc) needs the DiT head (--policy.head=dit): it guides the "
    "denoising towards the previous chunk, and the L1 Bridge Attention heads regress their chunk in one forward "
    "pass with no denoising to guide. Use --inference.type=sync with this checkpoint, or train a DiT head."
)


class VLAAdapterModel(nn.Module):
    """Backbone + ActionQuery + proprio projector + policy head."""

    def __init__(
        self, config: VLAAdapterConfig, backbone: PrismaticBackbone, state_dim: int, action_dim: int
    ):
        super().__init__()
        self.config = config
        self.backbone = backbone
        dim = backbone.hidden_size
        # Learnable ActionQuery. The released code zero-fills them, then HF post_init re-draws every embedding
        # from N(0, 0.02); we start from N(0, 0.02) explicitly.
        self.action_queries = nn.Parameter(torch.randn(config.num_action_queries, dim) * 0.02)
        self.proprio_proj = ProprioProjector(state_dim, dim)
        common = {
            "dim": dim,
            "action_dim": action_dim,
            "chunk_size": config.chunk_size,
            "num_layers": backbone.num_layers,
            "num_heads": config.num_heads,
            "variant": config.attention_variant,
            "rope_table": config.rope_table,
        }
        if config.head == "l1":
            self.head = BridgeAttentionPolicy(**common)
        else:
            self.head = BridgeDiTPolicy(
                **common,
                scheduler=config.diffusion_scheduler,
                num_train_timesteps=config.num_train_timesteps,
                num_inference_steps=config.num_inference_steps,
                beta_schedule=config.beta_schedule,
            )

    def conditions(self, images: Tensor, tasks: list[str], state: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, V, 3, H, W) in [0, 1], tasks, normalised state (B, S) ->
        cond (B, L, N_q + 1, D) per-layer ActionQuery latents + proprio token, raw (B, L, N_raw, D) per-layer Raw."""
        b = images.shape[0]
        queries = self.action_queries.unsqueeze(0).expand(b, -1, -1)
        prompts = [prismatic_prompt(t) for t in tasks]
        frozen_vision = self.config.training_mode == "frozen"
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen_vision):
            image_tokens = self.backbone.encode_images(images)
        inputs = self.backbone.prepare_inputs(
            images, prompts, extras={"query": queries}, image_tokens=image_tokens
        )
        out = self.backbone.stack.run(
            inputs
        )  # hidden_states[0] = embeddings, [l] = layer l (last: final norm)
        shift = 1 if self.config.condition_positions == "released" else 0
        raw_pos = inputs.image_positions - shift
        aq_pos = inputs.extra_positions["query"] - shift
        layers = out.hidden_states[1:]  # L entries of (B, N, D); the policy skips the embedding output
        d = layers[0].shape[-1]

        def take(
            pos: Tensor,
        ) -> Tensor:  # (B, n) -> (B, L, n, D), gathered layer by layer (no (B, L, N, D) copy)
            idx = pos.unsqueeze(-1).expand(-1, -1, d)
            return torch.stack([torch.gather(h, 1, idx) for h in layers], dim=1)

        raw, aq = take(raw_pos), take(aq_pos)
        proprio = self.proprio_proj(state.to(aq.dtype)).unsqueeze(
            1
        )  # (B, 1, D), the same token at every layer
        cond = torch.cat([aq, proprio.unsqueeze(1).expand(-1, aq.shape[1], -1, -1)], dim=2)
        return cond.float(), raw.float()


class VLAAdapterPolicy(PreTrainedPolicy):
    """LeRobot policy wrapper: input checks, action queue, losses, training modes, checkpoint I/O."""

    config_class = VLAAdapterConfig
    name = "vla_adapter"
    # FSDP wrap units for LeRobot >= 0.6.2's --parallelism.dp_shard: the Qwen2.5 decoder layers
    _fsdp_wrap_modules = QWEN2_WRAP_MODULES

    def __init__(self, config: VLAAdapterConfig, *, weightless: bool = False, **kwargs):
        """``weightless=True``: random weights only, reading no weight file outside transformers (for parameter
        counts and benchmarks built inside ``weightless_pretrained``)."""
        super().__init__(config)
        config.validate_features()
        self.config = config
        backbone = self._build_backbone(config, weightless)
        state_dim = config.robot_state_feature.shape[0]
        action_dim = config.action_feature.shape[0]
        self.model = VLAAdapterModel(config, backbone, state_dim, action_dim)
        self._apply_training_mode()
        self.init_rtc_processor()
        self.reset()
        if config.compile_model:
            compile_repeated_blocks(self.model, config.compile_mode)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _build_backbone(config: VLAAdapterConfig, weightless: bool = False) -> PrismaticBackbone:
        checkpoint_vlm = _CHECKPOINT_VLM.get()
        kw = {"attn_implementation": config.attn_implementation}
        if checkpoint_vlm is not None:
            return PrismaticBackbone.from_pretrained(checkpoint_vlm, load_weights=False, **kw)
        if config.vlm_path is not None:
            return PrismaticBackbone.from_pretrained(config.vlm_path, weightless=weightless, **kw)
        return PrismaticBackbone.from_parts(config.dino_model, config.siglip_model, config.llm_model, **kw)

    def _apply_training_mode(self) -> None:
        """LoRA (rank r, alpha 2r, all linear layers of the backbone, Gaussian init: released ``finetune.py``),
        frozen backbone, or full fine-tuning. ActionQuery, proprio projector and policy always train."""
        cfg = self.config
        backbone = self.model.backbone
        if cfg.training_mode == "full":
            return
        if cfg.training_mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(
                r=cfg.lora_rank,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules="all-linear",
                init_lora_weights="gaussian",
            )
            inject_adapter_in_model(lora, backbone)
        for name, p in backbone.named_parameters():
            p.requires_grad_(cfg.training_mode == "lora" and "lora_" in name)

    def get_optim_params(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def reset(self) -> None:
        self._action_queue: deque[Tensor] = deque(maxlen=self.config.n_action_steps)

    # ------------------------------------------------------------------ inputs
    def _check_batch(self, batch: dict, training: bool) -> None:
        cfg = self.config
        keys = cfg.image_keys
        for key in keys:
            if key not in batch:
                raise ValueError(
                    f"vla_adapter: camera {key} missing from the observation; the policy was trained with cameras "
                    f"{keys} - map your camera names with --rename_map, or retrain with your cameras"
                )
        for key in batch:
            is_camera = key == OBS_IMAGE or key.startswith(OBS_IMAGES + ".")
            if is_camera and key not in keys and not key.endswith("_is_pad"):
                raise ValueError(
                    f"vla_adapter: unexpected camera {key}; the policy was trained with cameras {keys} - drop it, map it "
                    "onto one of those with --rename_map, or retrain with it as an input feature"
                )
        if OBS_STATE not in batch:
            raise ValueError(
                f"vla_adapter: {OBS_STATE} missing from the observation; the policy needs the robot state"
            )
        want = cfg.robot_state_feature.shape[0]
        got = batch[OBS_STATE].shape[-1]
        if got != want:
            raise ValueError(
                f"vla_adapter: {OBS_STATE} has {got} dims but the policy was trained with {want}; feed the state the "
                f"policy was trained on, or retrain (the proprio projector takes {want} inputs)"
            )
        if training:
            want_a = cfg.action_feature.shape[0]
            if ACTION not in batch:
                raise ValueError("vla_adapter: training batch has no 'action'")
            if batch[ACTION].shape[-1] != want_a:
                raise ValueError(
                    f"vla_adapter: action has {batch[ACTION].shape[-1]} dims but the policy was built for {want_a}; "
                    "retrain from scratch for this action space (--policy.type=vla_adapter), or use a dataset with "
                    f"{want_a}-D actions"
                )
        tasks = batch.get("task")
        b = batch[OBS_STATE].shape[0]
        if tasks is None:
            raise ValueError(
                "vla_adapter: the batch has no 'task'; VLA-Adapter prompts 'What action should the robot take to "
                "<task>?' - give the dataset task strings, or pass --task (lerobot-rollout)"
            )
        tasks = [tasks] * b if isinstance(tasks, str) else list(tasks)
        for i, t in enumerate(tasks):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(
                    f"vla_adapter: task of sample {i} is empty; VLA-Adapter prompts 'What action should the robot take "
                    "to <task>?' - set the dataset's task strings, or pass a non-empty --task"
                )
        backbone = self.model.backbone
        fixed = len(keys) * backbone.num_image_tokens + cfg.num_action_queries
        for t in set(tasks):
            n = int(backbone.tokenize(prismatic_prompt(t)).numel())
            if n + fixed > backbone.context_length:
                raise ValueError(
                    f"vla_adapter: task {t[:60]!r}... makes a prompt of {n} tokens; with {len(keys)} x "
                    f"{backbone.num_image_tokens} image tokens and {cfg.num_action_queries} ActionQuery tokens the "
                    f"sequence is {n + fixed} tokens, over the language model's context of {backbone.context_length}; "
                    "shorten the task string"
                )

    def _images(self, batch: dict) -> Tensor:
        """Stack the cameras in config order -> (B, V, 3, S, S) at the backbone's image size S.

        Each view is resized to S (bicubic, antialiased), then, when ``crop_area < 1``, cropped to that area and
        resized back to S as the released pipeline does (``crop_and_resize``): a random crop in training (the
        released RLDS augmentation ``random_resized_crop``, scale = crop_area, ratio 1), the centre crop at
        inference (released evaluation, ``center_crop=True``).
        """
        size = self.model.backbone.image_spec.image_size
        area = self.config.crop_area
        views = []
        for key in self.config.image_keys:
            img = batch[key]
            if img.ndim == 5:  # (B, n_obs_steps, 3, H, W)
                img = img[:, -1]
            img = img.float()
            if img.shape[-2:] != (size, size):
                img = F.interpolate(
                    img, size=(size, size), mode="bicubic", antialias=True, align_corners=False
                )
            if area < 1.0:
                offsets = None
                if self.training:
                    offsets = torch.rand(img.shape[0], 2, device=img.device) * (1.0 - math.sqrt(area))
                img = crop_and_resize(img, area, size, offsets)
            views.append(img)
        return torch.stack(views, dim=1)

    def _inputs(self, batch: dict) -> tuple[Tensor, list[str], Tensor]:
        tasks = batch["task"]
        b = batch[OBS_STATE].shape[0]
        tasks = [tasks] * b if isinstance(tasks, str) else list(tasks)
        state = batch[OBS_STATE]
        if state.ndim == 3:
            state = state[:, -1]
        return self._images(batch), tasks, state

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict, reduction: str = "mean") -> tuple[Tensor, dict]:
        """Loss on a normalised batch: L1 between the predicted and the true chunk (eq. (2)), or the DDPM noise
        loss (eq. (B-2)); padded chunk steps (``action_is_pad``) are excluded."""
        self._check_batch(batch, training=True)
        images, tasks, state = self._inputs(batch)
        cond, raw = self.model.conditions(images, tasks, state)
        target = batch[ACTION].float()
        if self.config.head == "l1":
            pred = self.model.head(
                cond, raw, latent_noise_std=self.config.latent_noise_std if self.training else 0.0
            )
            per_elem = (pred - target).abs()  # eq. (2): L1 between predicted and ground-truth chunk
        else:
            per_elem = self.model.head.loss(target, cond, raw)  # eq. (B-2): DDPM noise-prediction error
        valid = (
            ~batch["action_is_pad"]
            if "action_is_pad" in batch
            else torch.ones(target.shape[:2], dtype=torch.bool, device=target.device)
        )
        mask = valid.unsqueeze(-1).to(per_elem.dtype)
        per_sample = (per_elem * mask).sum(dim=(1, 2)) / (
            mask.sum(dim=(1, 2)) * per_elem.shape[-1]
        ).clamp_min(1)
        name = "l1_loss" if self.config.head == "l1" else "noise_mse"
        if reduction == "none":
            return per_sample, {name: per_sample.mean().item()}
        loss = (per_elem * mask).sum() / (mask.sum() * per_elem.shape[-1]).clamp_min(1)
        return loss, {name: loss.item()}

    # ------------------------------------------------------------------ real-time chunking
    def supports_rtc(self) -> bool:
        """Real-time chunking (``lerobot-rollout --inference.type=rtc``) guides a denoising process towards the
        previous chunk, so only the DiT head (``head="dit"``) supports it; the L1 heads regress their chunk in one
        forward pass and have nothing to guide."""
        if self.config.head != "dit":
            logger.warning(RTC_NEEDS_DIT)
        return self.config.head == "dit"

    def init_rtc_processor(self) -> None:
        """Build LeRobot's ``RTCProcessor`` from ``config.rtc_config`` (lerobot-rollout sets it after loading the
        policy for ``--inference.type=rtc`` and calls this again)."""
        self.rtc_processor = None
        rtc_config = getattr(self.config, "rtc_config", None)
        if rtc_config is None:
            return
        if self.config.head != "dit":
            raise ValueError(RTC_NEEDS_DIT)
        from lerobot.policies.rtc.modeling_rtc import RTCProcessor

        self.rtc_processor = RTCProcessor(rtc_config)

    def _rtc_enabled(self) -> bool:
        return self.rtc_processor is not None and self.config.rtc_config.enabled

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_action_chunk(
        self,
        batch: dict,
        inference_delay: int | None = None,
        prev_chunk_left_over: Tensor | None = None,
        execution_horizon: int | None = None,
        **kwargs,
    ) -> Tensor:
        """(B, T, A) normalised action chunk for a normalised observation batch.

        Args:
            inference_delay, prev_chunk_left_over, execution_horizon: real-time chunking (DiT head with
                ``config.rtc_config``): the normalised actions of the previous chunk not yet executed,
                (T', A) or (B, T', A), how many of them run while this chunk is computed (followed exactly), and
                up to which step the guidance fades out (default ``rtc_config.execution_horizon``).
        """
        rtc_args = inference_delay is not None or prev_chunk_left_over is not None
        if rtc_args and self.config.head != "dit":
            raise ValueError(RTC_NEEDS_DIT)
        if rtc_args and not self._rtc_enabled():
            raise RuntimeError(
                "vla_adapter: got real-time chunking arguments but RTC is not configured: set config.rtc_config "
                "and call init_rtc_processor() (lerobot-rollout --inference.type=rtc does both)"
            )
        self._check_batch(batch, training=False)
        images, tasks, state = self._inputs(batch)
        cond, raw = self.model.conditions(images, tasks, state)
        if self.config.head == "l1":
            return self.model.head(cond, raw)
        if not self._rtc_enabled():
            return self.model.head.sample(cond, raw)
        return self.model.head.sample(
            cond,
            raw,
            rtc=self.rtc_processor,
            prev_chunk_left_over=prev_chunk_left_over,
            inference_delay=inference_delay,
            execution_horizon=execution_horizon,
        )

    @torch.no_grad()
    def select_action(self, batch: dict, **kwargs) -> Tensor:
        """(B, A): the next action; a new chunk is predicted every ``n_action_steps`` calls (open-loop execution)."""
        if self._rtc_enabled():
            raise RuntimeError(
                "vla_adapter: with real-time chunking the rollout loop calls predict_action_chunk "
                "(lerobot-rollout --inference.type=rtc); select_action is for synchronous execution"
            )
        if not self._action_queue:
            chunk = self.predict_action_chunk(batch)[:, : self.config.n_action_steps]
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    # ------------------------------------------------------------------ checkpoints
    def _save_pretrained(self, save_directory: Path, state_dict: dict[str, Tensor] | None = None) -> None:
        """config.json + model.safetensors (LeRobot), plus ``vlm/``: the backbone's configs and tokenizer (no
        weights), so that the checkpoint loads without the original backbone directory. Works under LeRobot 0.6.1's
        and 0.6.2's callers (``lerobot_vla_plugins.compat``)."""
        save_with_lerobot(super(), Path(save_directory), state_dict)
        if is_main_process():
            self.model.backbone.save_pretrained(Path(save_directory) / CHECKPOINT_VLM_DIR, weights=False)

    @classmethod
    def from_pretrained(
        cls, pretrained_name_or_path: str | Path, *, config: VLAAdapterConfig | None = None, **kwargs
    ) -> VLAAdapterPolicy:
        vlm_dir = _checkpoint_vlm_dir(pretrained_name_or_path, kwargs)
        token = _CHECKPOINT_VLM.set(vlm_dir)
        try:
            return super().from_pretrained(pretrained_name_or_path, config=config, **kwargs)
        finally:
            _CHECKPOINT_VLM.reset(token)

    @classmethod
    def _load_as_safetensor(cls, model: VLAAdapterPolicy, model_file: str, map_location: str, strict: bool):
        from safetensors.torch import load_file

        state = load_file(model_file, device="cpu")
        state = adapt_state_dict(model, state)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"vla_adapter: checkpoint {model_file} does not match the configured model "
                f"(missing {sorted(missing)[:5]}..., unexpected {sorted(unexpected)[:5]}...); check that "
                "the config's backbone sizes, head and chunk size are the checkpoint's"
            )
        return model


def _checkpoint_vlm_dir(pretrained_name_or_path, hub_kwargs: dict) -> Path | None:
    """The ``vlm/`` folder of a policy checkpoint (local, or downloaded from the Hub), or None if it has none."""
    path = Path(str(pretrained_name_or_path))
    if path.is_dir():
        vlm = path / CHECKPOINT_VLM_DIR
        return vlm if (vlm / "prismatic_config.json").is_file() else None
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            repo_id=str(pretrained_name_or_path),
            allow_patterns=[f"{CHECKPOINT_VLM_DIR}/*"],
            revision=hub_kwargs.get("revision"),
            cache_dir=hub_kwargs.get("cache_dir"),
            token=hub_kwargs.get("token"),
            local_files_only=hub_kwargs.get("local_files_only", False),
        )
    except Exception as err:  # noqa: BLE001 - fall back to the config's backbone source
        logger.warning(
            "vla_adapter: could not fetch %s/%s (%s)", pretrained_name_or_path, CHECKPOINT_VLM_DIR, err
        )
        return None
    vlm = Path(local) / CHECKPOINT_VLM_DIR
    return vlm if (vlm / "prismatic_config.json").is_file() else None


def adapt_state_dict(policy: VLAAdapterPolicy, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Make a checkpoint's state dict fit ``policy``: refuse a head of the other Bridge Attention variant, and
    move between LoRA-wrapped and plain backbone layers (plain weights go to ``base_layer``; LoRA weights are
    merged, W + (alpha / r) B A, when the policy has no LoRA).

    Raises:
        ValueError: the checkpoint's head is of another variant or kind than the config's.
    """
    own = policy.state_dict()
    cfg = policy.config
    ckpt_pro = any(".attn.k_self." in k for k in state)
    ckpt_original = any(".attn.k_proj." in k for k in state if k.startswith("model.head."))
    ckpt_variant = "pro" if ckpt_pro else "original" if ckpt_original else None
    if ckpt_variant is not None and ckpt_variant != cfg.attention_variant:
        raise ValueError(
            f"vla_adapter: the checkpoint's policy head is the '{ckpt_variant}' Bridge Attention variant but "
            f"attention_variant='{cfg.attention_variant}'; pass --policy.attention_variant={ckpt_variant}"
        )
    ckpt_head = "dit" if any(k.startswith("model.head.time_mlp.") for k in state) else "l1"
    if any(k.startswith("model.head.") for k in state) and ckpt_head != cfg.head:
        raise ValueError(
            f"vla_adapter: the checkpoint has a '{ckpt_head}' policy head but head='{cfg.head}'; pass --policy.head={ckpt_head}"
        )
    out = dict(state)
    # checkpoint with LoRA -> model without: merge
    lora_a = [k for k in state if ".lora_A." in k]
    if lora_a and not any(".lora_A." in k for k in own):
        scale = cfg.lora_alpha / cfg.lora_rank
        for ka in lora_a:
            prefix, adapter = ka.split(".lora_A.")
            kb = f"{prefix}.lora_B.{adapter}"
            base_w = out.pop(f"{prefix}.base_layer.weight")
            merged = base_w + scale * (state[kb].float() @ state[ka].float()).to(base_w.dtype)
            out[f"{prefix}.weight"] = merged
            if f"{prefix}.base_layer.bias" in out:
                out[f"{prefix}.bias"] = out.pop(f"{prefix}.base_layer.bias")
            out.pop(ka)
            out.pop(kb)
    # plain checkpoint -> model with LoRA: weights into base_layer, adapters keep their init (B = 0: no change)
    for k in list(out):
        if k not in own and k.endswith((".weight", ".bias")):
            prefix, leaf = k.rsplit(".", 1)
            wrapped = f"{prefix}.base_layer.{leaf}"
            if wrapped in own:
                out[wrapped] = out.pop(k)
    for k, v in own.items():
        if ".lora_" in k and k not in out:
            out[k] = v
    return out


__all__ = ["VLAAdapterModel", "VLAAdapterPolicy", "adapt_state_dict"]
