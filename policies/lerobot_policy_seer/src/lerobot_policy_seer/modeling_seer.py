"""Seer (Tian et al. 2024): a predictive inverse dynamics model, VITA-VLA's teacher.

Per timestep the trunk reads ``[text, state, view latents (V x N_q), view CLS (V), FRS (V x N_obs), INV (K)]``
(released ``SeerAgent.forward``; V = 2 primary + wrist in the paper). Text: frozen CLIP text tower + Linear.
Images: frozen MAE ViT-B/16 -> perceiver resampler (N_q latents) and the CLS token, each through a per-view
Linear. A learned per-timestep position embedding is added to every token of a step, then a LayerNorm and a
GPT-2 trunk with the released block-causal mask: no token attends to the [FRS]/[INV] tokens of any step except
that a step's [INV] tokens attend to the same step's [FRS]. The [INV] outputs go through the action decoder
(K future actions per step: arm tanh, gripper sigmoid); the [FRS] outputs through the foresight decoder (the
image ``foresight_step`` ahead). Loss: Smooth-L1 arm + 0.01 BCE gripper + 0.1 per-patch-normalised image MSE.

Dimension names: B batch, S history steps, V views, K action queries per step, T tokens per step, D width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import OBS_STATE
from torch import Tensor, nn

from lerobot_vla_plugins.speed.compile import compile_repeated_blocks

from .configuration_seer import SeerConfig
from .foresight_decoder import ForesightDecoder
from .history import build_step_batch, task_strings
from .inference import ActionRule, HistoryLoop
from .losses import action_losses, foresight_loss
from .perceiver_resampler import PerceiverResampler
from .state_action import ActionHead, StateEncoder, gripper_to_action

if TYPE_CHECKING:
    from transformers import CLIPTextModelWithProjection, PreTrainedTokenizerBase, ViTMAEModel

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def block_causal_mask(steps: int, obs_tokens: int, foresight_tokens: int, action_tokens: int) -> Tensor:
    """The released attention pattern (``generate_attention_mask``, fine-tuning settings) as a bool (N, N)
    matrix, True = may attend, N = steps * T with T = obs + foresight + action tokens per step.

    A token of step i attends to the observation tokens (text, state, latents, CLS) of steps <= i; nobody
    attends to [FRS]/[INV] tokens, except [INV] tokens to the [FRS] tokens of their own step.
    """
    t = obs_tokens + foresight_tokens + action_tokens
    idx = torch.arange(steps * t)
    step, pos = idx // t, idx % t
    is_obs = pos < obs_tokens
    is_frs = (pos >= obs_tokens) & (pos < obs_tokens + foresight_tokens)
    is_inv = pos >= obs_tokens + foresight_tokens
    past_obs = (step.unsqueeze(1) >= step.unsqueeze(0)) & is_obs.unsqueeze(0)
    own_frs = is_inv.unsqueeze(1) & is_frs.unsqueeze(0) & (step.unsqueeze(1) == step.unsqueeze(0))
    return past_obs | own_frs


@dataclass
class SeerOutput:
    """arm (B, S, K, A-1) in [-1, 1]; gripper_logit (B, S, K, 1); action_features (B, S, K, D) the trunk's [INV]
    outputs (what VITA-VLA aligns to); foresight (B, S, V, P, p*p*3) predicted patches, or None."""

    arm: Tensor
    gripper_logit: Tensor
    action_features: Tensor
    foresight: Tensor | None


def load_frozen_encoders(
    vision_name: str, text_name: str
) -> tuple[ViTMAEModel, CLIPTextModelWithProjection, PreTrainedTokenizerBase]:
    """MAE ViT (mask ratio 0: every patch kept), CLIP text tower with its projection (= OpenAI ``encode_text``) and
    its tokenizer, through the real transformers ``from_pretrained`` paths."""
    from transformers import (
        AutoTokenizer,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        ViTMAEConfig,
        ViTMAEModel,
    )
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the CLIP checkpoint's vision tower is reported as unused: expected
    try:
        mae_config = ViTMAEConfig.from_pretrained(vision_name)
        mae_config.mask_ratio = 0.0
        vision = ViTMAEModel.from_pretrained(vision_name, config=mae_config)
        text_config = CLIPTextConfig.from_pretrained(text_name)
        text = CLIPTextModelWithProjection.from_pretrained(text_name, config=text_config)
        tokenizer = AutoTokenizer.from_pretrained(text_name)
    finally:
        hf_logging.set_verbosity(verbosity)
    for module in (vision, text):
        module.requires_grad_(False)
        module.eval()
    return vision, text, tokenizer


class SeerModel(nn.Module):
    def __init__(self, config: SeerConfig):
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        self.config = config
        h = config.hidden_dim
        self.num_views = len(config.camera_keys)
        self.vision_encoder, self.text_encoder, self.tokenizer = load_frozen_encoders(
            config.vision_encoder_name, config.text_encoder_name
        )
        vcfg = self.vision_encoder.config
        self.image_size = int(vcfg.image_size if isinstance(vcfg.image_size, int) else vcfg.image_size[0])
        self.patch_size = int(vcfg.patch_size if isinstance(vcfg.patch_size, int) else vcfg.patch_size[0])
        self.num_patches = (self.image_size // self.patch_size) ** 2
        vision_width = vcfg.hidden_size
        text_width = self.text_encoder.config.projection_dim

        self.text_projector = nn.Linear(text_width, h)
        state_dim = config.robot_state_feature.shape[0]
        self.state_encoder = StateEncoder(
            state_dim - config.gripper_state_dim, config.gripper_state_dim, config.gripper_state_mode, h
        )
        self.resampler = PerceiverResampler(
            vision_width,
            config.num_resampler_queries,
            config.resampler_depth,
            config.resampler_heads,
            config.resampler_head_dim,
        )
        self.image_projectors = nn.ModuleList([nn.Linear(vision_width, h) for _ in range(self.num_views)])
        self.cls_projectors = nn.ModuleList([nn.Linear(vision_width, h) for _ in range(self.num_views)])
        self.foresight_queries = nn.Parameter(
            torch.zeros(self.num_views * config.num_foresight_tokens, h)
        )  # [FRS]
        self.action_queries = nn.Parameter(torch.zeros(config.action_pred_steps, h))  # [INV]
        self.step_embedding = nn.Parameter(torch.zeros(config.history_length, h))  # per-timestep position
        self.embedding_norm = nn.LayerNorm(h)
        trunk_config = GPT2Config(
            n_embd=h, n_layer=config.num_layers, n_head=config.num_heads, vocab_size=1, n_positions=1
        )
        self.trunk = GPT2Model(trunk_config)
        # Seer's GPT-2 has no token or absolute-position embeddings (inputs are embeddings; positions come from
        # step_embedding): the blocks are run directly (``run_trunk``) and the two tables are dropped.
        del self.trunk.wte, self.trunk.wpe
        self.action_head = ActionHead(h, config.arm_action_dim)
        self.foresight_decoder = ForesightDecoder(
            h,
            config.image_decoder_heads,
            config.image_decoder_depth,
            config.num_foresight_tokens,
            self.num_patches,
            self.patch_size,
        )
        self.obs_tokens = 2 + self.num_views * (config.num_resampler_queries + 1)
        self.tokens_per_step = (
            self.obs_tokens + self.num_views * config.num_foresight_tokens + config.action_pred_steps
        )
        mask = block_causal_mask(
            config.history_length,
            self.obs_tokens,
            self.num_views * config.num_foresight_tokens,
            config.action_pred_steps,
        )
        self.register_buffer("attention_mask", mask, persistent=False)
        self.register_buffer("pixel_mean", torch.tensor(CLIP_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_STD).view(3, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """Released ``initialize_weights``: xavier-uniform Linear weights, zero biases, unit LayerNorms, N(0, 0.02)
        step embedding and mask token, zero query tokens (the frozen encoders and GPT-2's own init are kept)."""
        own = [
            m for name, m in self.named_children() if name not in ("vision_encoder", "text_encoder", "trunk")
        ]
        for root in own:
            for m in root.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.step_embedding, std=0.02)
        nn.init.normal_(self.foresight_decoder.mask_token, std=0.02)

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        self.vision_encoder.eval()
        self.text_encoder.eval()
        self._text_cache: dict[str, Tensor] = {}
        return self

    # ------------------------------------------------------------------ inputs
    def preprocess(self, images: Tensor) -> Tensor:
        """(..., 3, H, W) in [0, 1] -> (..., 3, 224, 224) as the released CLIP ``preprocess``: centre square crop,
        bicubic resize to the encoder's size, CLIP mean/std (Seer feeds these to MAE and uses them as foresight
        targets)."""
        lead, (c, hgt, wid) = images.shape[:-3], images.shape[-3:]
        x = images.reshape(-1, c, hgt, wid).float()
        side = min(hgt, wid)
        if hgt != wid:
            top, left = (hgt - side) // 2, (wid - side) // 2
            x = x[..., top : top + side, left : left + side]
        if side != self.image_size:
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bicubic",
                antialias=True,
                align_corners=False,
            )
        x = (x.clamp(0, 1) - self.pixel_mean) / self.pixel_std
        return x.reshape(*lead, c, self.image_size, self.image_size)

    def encode_text(self, texts: list[str]) -> Tensor:
        """B instructions -> (B, 512) CLIP text embeddings (frozen; each distinct string encoded once per batch, and
        once per episode at inference: the instruction does not change while the policy acts)."""
        cache = getattr(self, "_text_cache", None) if not self.training else None
        if cache is not None and all(t in cache for t in texts):
            return torch.stack([cache[t] for t in texts])
        unique = list(dict.fromkeys(texts))
        tokens = self.tokenizer(
            unique,
            padding="max_length",
            max_length=self.config.text_max_length,
            truncation=True,
            return_tensors="pt",
        )
        device = self.text_projector.weight.device
        with torch.no_grad():
            emb = self.text_encoder(
                input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
            ).text_embeds
        if cache is not None:
            cache.update(zip(unique, emb, strict=False))
        return emb[torch.tensor([unique.index(t) for t in texts], device=device)]

    def encode_observations(self, pixels: Tensor, state: Tensor, texts: list[str]) -> Tensor:
        """pixels (B, S, V, 3, 224, 224) preprocessed, state (B, S, D_s), B texts -> (B, S, T_obs, D) observation
        tokens ``[text, state, latents of each view, CLS of each view]``."""
        b, s, v = pixels.shape[:3]
        with torch.no_grad():
            n = b * s * v
            order = torch.arange(self.num_patches, device=pixels.device, dtype=torch.float32).expand(n, -1)
            feats = self.vision_encoder(
                pixel_values=pixels.reshape(n, *pixels.shape[-3:]), noise=order
            ).last_hidden_state
        feats = feats.to(self.text_projector.weight.dtype)
        cls, patches = feats[:, 0].view(b, s, v, -1), feats[:, 1:]
        latents = self.resampler(patches).view(b, s, v, -1, feats.shape[-1])
        latent_tokens = torch.cat([self.image_projectors[i](latents[:, :, i]) for i in range(v)], dim=2)
        cls_tokens = torch.stack([self.cls_projectors[i](cls[:, :, i]) for i in range(v)], dim=2)
        text = self.text_projector(self.encode_text(texts).to(latent_tokens.dtype))
        text = text.view(b, 1, 1, -1).expand(b, s, 1, -1)
        state_tok = self.state_encoder(state.to(latent_tokens.dtype)).unsqueeze(2)
        return torch.cat((text, state_tok, latent_tokens, cls_tokens), dim=2)

    # ------------------------------------------------------------------ trunk
    def run_trunk(self, tokens: Tensor) -> Tensor:
        """(B, S, T, D) tokens -> (B, S, T, D) trunk outputs, S <= history_length steps."""
        b, s, t, d = tokens.shape
        x = tokens + self.step_embedding[:s].view(1, s, 1, d)
        x = self.trunk.drop(self.embedding_norm(x.reshape(b, s * t, d)))
        allowed = self.attention_mask[: s * t, : s * t]
        mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(
            ~allowed, torch.finfo(x.dtype).min
        )
        mask = mask.view(1, 1, s * t, s * t)
        for block in self.trunk.h:
            x = block(x, attention_mask=mask)
        return self.trunk.ln_f(x).view(b, s, t, d)

    def forward(self, pixels: Tensor, state: Tensor, texts: list[str], foresight: bool = False) -> SeerOutput:
        """pixels (B, S, V, 3, 224, 224) from ``preprocess``, state (B, S, D_s) normalised, B instructions."""
        return self.predict(self.encode_observations(pixels, state, texts), foresight=foresight)

    def predict(self, obs: Tensor, foresight: bool = False) -> SeerOutput:
        """Observation tokens (B, S, T_obs, D) of S <= history_length steps (``encode_observations``) -> outputs.

        Split from ``forward`` so that inference can keep the tokens of past frames: they depend on their frame
        only (frozen encoders), while the trunk reruns as the per-step positions shift with the window.
        """
        b, s = obs.shape[:2]
        if s > self.config.history_length:
            raise ValueError(
                f"seer: got {s} steps but the model was built for history_length={self.config.history_length}"
            )
        queries = torch.cat((self.foresight_queries, self.action_queries)).to(obs.dtype)
        out = self.run_trunk(torch.cat((obs, queries.expand(b, s, -1, -1)), dim=2))
        n_frs = self.num_views * self.config.num_foresight_tokens
        frs, inv = out[:, :, self.obs_tokens : self.obs_tokens + n_frs], out[:, :, self.obs_tokens + n_frs :]
        arm, gripper_logit = self.action_head(inv)
        pred = None
        if foresight:
            q = frs.reshape(b * s * self.num_views, self.config.num_foresight_tokens, -1)
            pred = self.foresight_decoder(q).view(b, s, self.num_views, self.num_patches, -1)
        return SeerOutput(arm=arm, gripper_logit=gripper_logit, action_features=inv, foresight=pred)


def random_shift(pixels: Tensor, pads: list[int]) -> Tensor:
    """Released ``RandomShiftsAug`` (DrQ) with one shift per sample and view, the same over all its frames
    (``--traj_cons``): replicate-pad by ``pad`` and crop back at a random integer offset.

    pixels: (B, T, V, 3, H, W); pads: one per view.
    """
    b, _, v, _, h, w = pixels.shape
    out = pixels.clone()
    for view, pad in enumerate(pads[:v]):
        if pad <= 0:
            continue
        frames = pixels[:, :, view]  # (B, T, 3, H, W)
        padded = F.pad(frames.flatten(0, 1), (pad,) * 4, mode="replicate").view(
            b, -1, 3, h + 2 * pad, w + 2 * pad
        )
        offsets = torch.randint(0, 2 * pad + 1, (b, 2))
        for i in range(b):
            dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
            out[i, :, view] = padded[i, :, :, dy : dy + h, dx : dx + w]
    return out


class SeerPolicy(PreTrainedPolicy):
    """LeRobot policy around ``SeerModel``: left-aligned history windows for training, an observation queue of the
    last ``history_length`` steps at inference, optional temporal ensembling of the 3-step predictions."""

    config_class = SeerConfig
    name = "seer"

    def __init__(self, config: SeerConfig, **kwargs):
        super().__init__(config)
        config.validate_features()
        self.config = config
        self.model = SeerModel(config)
        self.reset()
        if config.compile_model:
            compile_repeated_blocks(self.model, config.compile_mode)

    def get_optim_params(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def reset(self) -> None:
        cfg = self.config
        # Seer's released rule: the current step's action 0 (or the temporal ensemble), no padding needed
        rule = ActionRule(
            temporal_ensemble=cfg.temporal_ensemble, ensemble_temperature=cfg.ensemble_temperature
        )
        self._history = HistoryLoop(cfg.history_length, cfg.action_pred_steps, rule)  # (B, T_obs, D) per step
        self.model._text_cache = {}

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict) -> tuple[Tensor, dict]:
        cfg = self.config
        use_foresight = cfg.foresight_loss_weight > 0
        steps = build_step_batch(
            batch,
            cfg.camera_keys,
            cfg.history_length,
            cfg.action_pred_steps,
            cfg.foresight_step if use_foresight else 0,
        )
        texts = task_strings(batch, steps.state.shape[0], "seer")
        s = cfg.history_length
        frames = steps.images if not use_foresight else torch.cat((steps.images, steps.foresight), dim=1)
        pixels = self.model.preprocess(frames)
        if self.training and cfg.random_shift_pads:
            pixels = random_shift(pixels, [cfg.shift_pad(v) for v in range(pixels.shape[2])])
        out = self.model(pixels[:, :s], steps.state, texts, foresight=use_foresight)
        arm_loss, gripper_loss = action_losses(
            out.arm, out.gripper_logit, steps.arm_target, steps.gripper_target, steps.action_valid
        )
        # released loss: 1.0 * Smooth-L1(arm) + 0.01 * BCE(gripper) + 0.1 * image loss
        loss = cfg.arm_loss_weight * arm_loss + cfg.gripper_loss_weight * gripper_loss
        info = {"arm_loss": arm_loss.item(), "gripper_loss": gripper_loss.item()}
        if use_foresight:
            b, _, v = out.foresight.shape[:3]
            target = pixels[:, s:].reshape(b * s * v, *pixels.shape[-3:])
            valid = steps.foresight_valid.unsqueeze(-1).expand(b, s, v).reshape(-1)
            image_loss = foresight_loss(
                out.foresight.reshape(b * s * v, *out.foresight.shape[-2:]),
                target,
                self.model.patch_size,
                valid,
            )
            loss = loss + cfg.foresight_loss_weight * image_loss
            info["foresight_loss"] = image_loss.item()
        return loss, info

    # ------------------------------------------------------------------ inference
    def _model_space_chunk(self, batch: dict) -> Tensor:
        """Push this observation into the history and predict (B, K, A): arm in [-1, 1], gripper probability."""
        images = torch.stack([batch[k] for k in self.config.camera_keys], dim=1)  # (B, V, 3, H, W)
        state = batch[OBS_STATE]
        if images.dim() != 5 or state.dim() != 2:
            raise ValueError(
                f"seer: select_action expects one observation per env (cameras (B, 3, H, W), state (B, D)); got "
                f"{tuple(images.shape)} and {tuple(state.shape)}"
            )
        texts = task_strings(batch, state.shape[0], "seer")
        # only the new frame is encoded: the observation tokens of the past frames are kept (frozen, deterministic)
        obs = self.model.encode_observations(
            self.model.preprocess(images).unsqueeze(1), state.unsqueeze(1), texts
        )[:, 0]
        return self._history.chunk((obs,), self._predict_last)

    def _predict_last(self, obs: Tensor) -> Tensor:
        """(B, n, T_obs, D) observation tokens -> the (B, K, A) chunk predicted at the last step."""
        out = self.model.predict(obs)
        return torch.cat((out.arm[:, -1], torch.sigmoid(out.gripper_logit[:, -1])), dim=-1)

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict, **kwargs) -> Tensor:
        """The K = 3 actions predicted at this step, (B, K, A) (normalised)."""
        self.eval()
        return gripper_to_action(self._model_space_chunk(batch), self.config.binarize_gripper)

    @torch.no_grad()
    def select_action(self, batch: dict, **kwargs) -> Tensor:
        """One (B, A) action per step: the first predicted action, or the temporal ensemble of the predictions made
        for this step over the last K steps (``temporal_ensemble``). The model runs every step (no chunk replay),
        as in the released evaluations."""
        self.eval()
        action = self._history.action(self._model_space_chunk(batch))
        return gripper_to_action(action, self.config.binarize_gripper)


__all__ = ["SeerModel", "SeerOutput", "SeerPolicy", "block_causal_mask", "random_shift"]
