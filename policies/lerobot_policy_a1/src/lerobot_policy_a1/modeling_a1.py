"""A1 (arXiv 2604.05672) as a LeRobot policy: a VLM backbone read layer by layer, a flow-matching expert or an MLP
head, multi-exit training, early exit by action consistency and inter-layer truncated flow matching.

Shapes: B batch, V views, T chunk, A action dim (padded to ``max_action_dim``), S state dim (padded to
``max_state_dim``), N prefix tokens, D backbone width, H expert width, L backbone layers.

Where the released code (github.com/ATeam-Research/A1) and this implementation differ, the line says which
one we follow and why; the full list is in docs/a1.md.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from collections import deque
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION, OBS_STATE
from torch import Tensor, nn

from lerobot_vla_plugins.adaptive import ExitCalibration, ExitController, ExitResult, ExitStats, exit_layers
from lerobot_vla_plugins.adaptive.flops import attention_mlp_flops, linear_flops
from lerobot_vla_plugins.backbones import VLMBackbone, VLMInputs, load_backbone_class
from lerobot_vla_plugins.backbones.base import PrefixKV
from lerobot_vla_plugins.compat import QWEN2_WRAP_MODULES, is_main_process, save_with_lerobot
from lerobot_vla_plugins.heads.flow_matching import (
    A1_FLOW_MATCHING,
    VelocityGuide,
    rtc_guided_velocity,
    sinusoidal_time_embedding,
)
from lerobot_vla_plugins.heads.mlp_resnet import MLPResNet
from lerobot_vla_plugins.heads.proprio import ProprioProjector
from lerobot_vla_plugins.speed.compile import compile_repeated_blocks

from .configuration_a1 import A1Config

logger = logging.getLogger(__name__)

#: files written next to a checkpoint by lerobot-a1-calibrate and loaded with it
CALIBRATION_FILE = "exit_calibration.json"
DISCREPANCY_FILE = "exit_discrepancies.safetensors"
#: written next to lerobot-eval's eval_info.json when the policy ran with early exit
EXIT_STATS_FILE = "a1_exit_stats.json"


# ====================================================================================== heads
class A1FlowMatchingHead(nn.Module):
    """The flow-matching expert (paper section 3.2; released ``FlowMatchingActionHead``, pvf "2d_attn_mask").

    A Qwen2 decoder (no token embedding, no LM head) over the suffix [state token, T action tokens]; its layer i
    attends to the backbone's layer-i keys/values over the valid prefix plus its own suffix (causally). Where
    the backbone's KV geometry (KV heads x head dim) differs from the expert's, a learned per-layer linear map
    projects the prefix keys and values (our extension, so that any backbone family works; the released
    expert copies the VLM's 4 KV heads x 128).
    """

    def __init__(
        self, config: A1Config, backbone_layers: int, backbone_kv_heads: int, backbone_head_dim: int
    ):
        super().__init__()
        from transformers import Qwen2Config, Qwen2Model

        depth = config.expert_num_layers or backbone_layers
        if depth != backbone_layers:
            raise ValueError(
                f"a1: expert_num_layers={depth} but the backbone has {backbone_layers} layers; expert layer i reads "
                "backbone layer i's keys/values, so leave expert_num_layers unset (or equal to the backbone depth)"
            )
        kv_heads = config.expert_num_kv_heads or backbone_kv_heads
        if config.expert_num_heads % kv_heads:
            raise ValueError(
                f"a1: expert_num_heads ({config.expert_num_heads}) must be a multiple of the KV heads ({kv_heads})"
            )
        h = config.expert_hidden_size
        self.head_dim = h // config.expert_num_heads
        self.kv_heads = kv_heads
        self.chunk_size = config.chunk_size
        self.position_offset = config.expert_position_offset
        expert_cfg = Qwen2Config(
            hidden_size=h,
            intermediate_size=config.expert_intermediate_size,
            num_hidden_layers=depth,
            num_attention_heads=config.expert_num_heads,
            num_key_value_heads=kv_heads,
            rope_theta=config.expert_rope_theta,
            rms_norm_eps=1e-6,
            vocab_size=1,
            max_position_embeddings=32768,
            tie_word_embeddings=False,
            attn_implementation=config.attn_implementation,
        )
        self.expert = Qwen2Model(expert_cfg)
        self.expert.embed_tokens = None  # inputs are embeddings; the released head deletes it too
        self.project_kv = (kv_heads, self.head_dim) != (backbone_kv_heads, backbone_head_dim)
        if self.project_kv:
            src, dst = backbone_kv_heads * backbone_head_dim, kv_heads * self.head_dim
            self.key_proj = nn.ModuleList([nn.Linear(src, dst, bias=False) for _ in range(depth)])
            self.value_proj = nn.ModuleList([nn.Linear(src, dst, bias=False) for _ in range(depth)])
        # Names as in the released head so its weights load by name.
        self.state_proj = nn.Linear(config.max_state_dim, h)
        self.action_in_proj = nn.Linear(config.max_action_dim, h)
        self.action_time_in = nn.Linear(2 * h, h)
        self.action_time_out = nn.Linear(h, h)
        self.action_out = MLPResNet(num_blocks=2, input_dim=h, hidden_dim=h, output_dim=config.max_action_dim)

    @property
    def num_layers(self) -> int:
        return len(self.expert.layers)

    def prefix_kv(self, layer: int, kv: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Backbone layer ``layer``'s (keys, values), each (B, H_kv, N, Dh), in the expert's geometry and dtype."""
        dtype = self.action_in_proj.weight.dtype
        k, v = kv[0].to(dtype), kv[1].to(dtype)
        if not self.project_kv:
            return k, v
        b, _, n, _ = k.shape

        def proj(x, lin):
            y = lin(x.transpose(1, 2).reshape(b, n, -1))
            return y.view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)

        return proj(k, self.key_proj[layer]), proj(v, self.value_proj[layer])

    def suffix(self, state: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """[state token, T action tokens] (B, 1 + T, H): a_i = W_out silu(W_in [W_a x_t, emb(t)])."""
        dtype = self.action_in_proj.weight.dtype
        state_tok = self.state_proj(state.to(dtype)).unsqueeze(1)
        t_emb = sinusoidal_time_embedding(t, self.action_in_proj.out_features).to(dtype)
        a = self.action_in_proj(x_t.to(dtype))
        at = torch.cat([a, t_emb.unsqueeze(1).expand(-1, a.shape[1], -1)], dim=-1)
        at = self.action_time_out(F.silu(self.action_time_in(at)))
        return torch.cat([state_tok, at], dim=1)

    def attention_inputs(
        self, prefix: list[tuple[Tensor, Tensor]], prefix_mask: Tensor, like: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """(mask, position ids, rotary embeddings) of a suffix shaped like ``like`` (B, 1 + T, ...) over the valid
        prefix; only the batch size, suffix length, dtype and device of ``like`` are read.

        They depend on the prefix and the suffix length only, not on x_t or t: computed once per query and shared
        by its Euler steps (``A1Model._sample``).
        """
        from transformers import DynamicCache
        from transformers.masking_utils import create_causal_mask

        b, m = like.shape[:2]
        # The mask only needs the prefix length (layer 0's cache); each layer reads its own prefix K/V.
        cache = DynamicCache(config=self.expert.config)
        cache.update(prefix[0][0], prefix[0][1], 0)
        valid = prefix_mask.long().sum(1, keepdim=True)  # (B, 1)
        if self.position_offset is None:
            # Suffix positions continue after each sample's valid prefix (the released "4d" variant), so that a
            # sample's output does not depend on how its batch is padded.
            start = valid
        else:
            # Released "2d_attn_mask" head: Qwen2Model numbers the suffix after the whole cache, i.e. after the
            # prompt padded to data.sequence_length (MMCollatorForAction pad="to_max"), whatever the batch.
            longest = int(valid.max())
            if longest > self.position_offset:
                raise ValueError(
                    f"a1: the prompt has {longest} tokens but expert_position_offset={self.position_offset} (the released "
                    "checkpoint's data.sequence_length, which its collator never exceeds); shorten the instruction or "
                    "use fewer cameras"
                )
            start = torch.full_like(valid, self.position_offset)
        positions = start + torch.arange(m, device=like.device).unsqueeze(0)
        mask_2d = torch.cat(
            [prefix_mask.bool(), torch.ones(b, m, dtype=torch.bool, device=like.device)], dim=1
        )
        mask = create_causal_mask(
            config=self.expert.config,
            inputs_embeds=like,
            attention_mask=mask_2d,
            past_key_values=cache,
            position_ids=positions,
        )
        return mask, positions, self.expert.rotary_emb(like, positions)

    def forward(
        self,
        prefix: list[tuple[Tensor, Tensor]],
        prefix_mask: Tensor,
        state: Tensor,
        x_t: Tensor,
        t: Tensor,
        out_layers: list[int],
        attention: tuple | None = None,
    ) -> dict[int, Tensor]:
        """Velocity (B, T, A) read after each expert layer in ``out_layers`` (0-based); the expert runs
        max(out_layers) + 1 layers, its layer i over ``prefix[i]`` (already ``prefix_kv``-mapped).

        Args:
            prefix_mask: (B, N) bool, True for valid prefix tokens (right padding is ignored).
            attention: ``attention_inputs`` of this prefix, when the caller computed them once for several calls.
        """
        depth = max(out_layers) + 1
        if depth > len(prefix):
            raise ValueError(f"expert depth {depth} needs {depth} prefix layers, got {len(prefix)}")
        suffix = self.suffix(state, x_t, t)
        mask, positions, pos_emb = (
            attention if attention is not None else self.attention_inputs(prefix, prefix_mask, suffix)
        )
        hidden = suffix
        wanted = set(out_layers)
        out: dict[int, Tensor] = {}
        for i, layer in enumerate(self.expert.layers[:depth]):
            hidden = layer(
                hidden,
                attention_mask=mask,
                position_embeddings=pos_emb,
                position_ids=positions,
                past_key_values=PrefixKV(*prefix[i]),
                use_cache=True,
            )
            if i in wanted:
                out[i] = self.action_out(self.expert.norm(hidden)[:, 1:])
        return out

    def flops_per_step(self, depth: int, prefix_len: int) -> int:
        """FLOPs of one velocity evaluation of ``depth`` expert layers over a ``prefix_len`` prefix."""
        cfg = self.expert.config
        m = 1 + self.chunk_size
        h = cfg.hidden_size
        layer = attention_mlp_flops(
            h, cfg.intermediate_size, cfg.num_attention_heads, self.kv_heads, self.head_dim, m, prefix_len + m
        )
        io = linear_flops(self.state_proj.in_features, h, 1) + linear_flops(
            self.action_in_proj.in_features, h, m - 1
        )
        io += linear_flops(2 * h, h, m - 1) + linear_flops(h, h, m - 1)
        io += (3 * linear_flops(h, h, m - 1)) + linear_flops(h, self.action_out.fc2.out_features, m - 1)
        return depth * layer + io


class A1MLPHead(nn.Module):
    """The MLP head (paper eq. 3-5; released ``L1RegressionActionHead``): a state token and T x q learnable query
    tokens appended to the prompt; the query tokens' states of one layer, grouped per chunk step (B, T, q*D),
    go through an MLP-ResNet to the chunk. Trained with L1.

    The released head uses q = 7 special vocabulary tokens per step plus <proprioception>/<timestep>/<action_*>
    markers and bidirectional attention; here the queries are learned embeddings under the backbone's causal
    mask (they come last, so they still see the whole prompt).
    """

    def __init__(self, config: A1Config, width: int):
        super().__init__()
        self.tokens_per_step = config.mlp_tokens_per_step
        self.chunk_size = config.chunk_size
        self.query = nn.Parameter(torch.randn(config.chunk_size * config.mlp_tokens_per_step, width) * 0.02)
        self.proprio_projector = ProprioProjector(config.max_state_dim, width)  # state -> one backbone token
        self.action_head = MLPResNet(
            num_blocks=2,
            input_dim=self.tokens_per_step * width,
            hidden_dim=width,
            output_dim=config.max_action_dim,
        )

    def extras(self, state: Tensor, dtype: torch.dtype) -> dict[str, Tensor]:
        """Prefix segments appended after the prompt: {"state": (B, 1, D), "query": (B, T*q, D)}."""
        b = state.shape[0]
        st = self.proprio_projector(state.to(self.query.dtype)).unsqueeze(1)
        return {"state": st.to(dtype), "query": self.query.unsqueeze(0).expand(b, -1, -1).to(dtype)}

    def forward(self, query_states: Tensor) -> Tensor:
        """(B, T*q, D) normalised query states -> (B, T, A)."""
        b = query_states.shape[0]
        x = query_states.to(self.query.dtype).reshape(b, self.chunk_size, -1)
        return self.action_head(x)

    def flops(self) -> int:
        r = self.action_head
        return self.chunk_size * (
            linear_flops(r.fc1.in_features, r.fc1.out_features, 1)
            + len(r.mlp_resnet_blocks) * linear_flops(r.fc1.out_features, r.fc1.out_features, 1)
            + linear_flops(r.fc2.in_features, r.fc2.out_features, 1)
        )


# ====================================================================================== model
def sample_shared_layer(num_layers: int, device: torch.device | str = "cpu") -> int:
    """A layer index drawn uniformly from [0, num_layers), the same on every process (rank 0's draw is
    broadcast; released ``train_exit_random_layer_id``)."""
    r = torch.randint(num_layers, (1,))
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dev = torch.device(device)
        if dist.get_backend() == "nccl" and dev.type != "cuda":
            dev = torch.device("cuda", torch.cuda.current_device())
        t = r.to(dev)
        dist.broadcast(t, src=0)
        r = t.cpu()
    return int(r.item())


class A1Model(nn.Module):
    """Backbone + head; everything except LeRobot's queues and statistics.

    ``weightless``: built inside ``weightless_pretrained`` (parameter counts, benchmarks): the backbone skips the
    weight files it reads outside transformers.
    """

    def __init__(self, config: A1Config, weightless: bool = False):
        super().__init__()
        self.config = config
        family = load_backbone_class(config.backbone_family)
        self.backbone: VLMBackbone = family.from_pretrained(
            config.vlm_name,
            dtype=config.vlm_dtype,
            attn_implementation=config.attn_implementation,
            num_layers=config.vlm_num_layers,
            weightless=weightless,
        )
        self.backbone.gradient_checkpointing = config.gradient_checkpointing
        self.num_layers = self.backbone.num_layers
        self.exit_layers = exit_layers(self.num_layers, config.exit_interval) if self.num_layers >= 2 else [0]
        if config.head == "flow_matching":
            self.head = A1FlowMatchingHead(
                config, self.num_layers, self.backbone.num_kv_heads, self.backbone.head_dim
            )
        else:
            self.head = A1MLPHead(config, self.backbone.hidden_size)
        self.image_keys = list(config.image_features)
        self.action_dim = config.action_feature.shape[0]
        state = config.input_features.get(OBS_STATE)
        self.state_dim = state.shape[0] if state is not None else 0
        self._apply_freezing()

    # ------------------------------------------------------------------ parameters
    def backbone_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(language-model parameters, vision-encoder + connector parameters) of the backbone."""
        lm_ids = {id(p) for p in self.backbone.decoder.parameters()}
        lm = [p for p in self.backbone.parameters() if id(p) in lm_ids]
        vision = [p for p in self.backbone.parameters() if id(p) not in lm_ids]
        return lm, vision

    def _apply_freezing(self) -> None:
        lm, vision = self.backbone_groups()
        for p in vision:
            p.requires_grad_(self.config.train_vision_encoder)
        for p in lm:
            p.requires_grad_(self.config.train_language_model)

    # ------------------------------------------------------------------ inputs
    @property
    def is_flow_matching(self) -> bool:
        return isinstance(self.head, A1FlowMatchingHead)

    def pad_state(self, batch: dict) -> Tensor:
        """(B, S) state zero-padded to max_state_dim (zeros when the policy has no state input)."""
        ref = batch.get(self.image_keys[0])
        if ref is None:
            self.images(batch)  # raises the missing-camera error
        b = ref.shape[0]
        out = torch.zeros(b, self.config.max_state_dim, device=ref.device, dtype=torch.float32)
        if self.state_dim:
            if OBS_STATE not in batch:
                raise KeyError(
                    f"a1: the batch has no {OBS_STATE!r}; the policy was trained with a state input"
                )
            s = batch[OBS_STATE].float()
            if s.dim() == 3:  # (B, n_obs_steps, S)
                s = s[:, -1]
            out[:, : s.shape[-1]] = s
        return out

    def pad_action(self, action: Tensor) -> Tensor:
        """(B, T, A_real) -> (B, T, max_action_dim)."""
        return F.pad(action.float(), (0, self.config.max_action_dim - action.shape[-1]))

    def images(self, batch: dict) -> Tensor:
        """(B, V, 3, H, W) float in [0, 1] from the configured cameras, in config order."""
        missing = [k for k in self.image_keys if k not in batch]
        if missing:
            raise KeyError(
                f"a1: camera(s) {missing} missing from the batch (it has {sorted(k for k in batch if k.startswith('observation'))}); "
                f"the policy was trained with {self.image_keys} - pass --rename_map or retrain"
            )
        views = []
        for k in self.image_keys:
            img = batch[k]
            if img.dim() == 5:  # (B, n_obs_steps, 3, H, W)
                img = img[:, -1]
            img = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
            views.append(img)
        shapes = {tuple(v.shape[-2:]) for v in views}
        if len(shapes) > 1:
            size = max(shapes)
            views = [
                F.interpolate(v, size=size, mode="bilinear", align_corners=False)
                if tuple(v.shape[-2:]) != size
                else v
                for v in views
            ]
        return torch.stack(views, dim=1)

    def prompts(self, batch: dict, batch_size: int) -> list[str]:
        tasks = batch.get("task")
        if tasks is None:
            tasks = [""] * batch_size
        elif isinstance(tasks, str):
            tasks = [tasks] * batch_size
        placeholder = self.backbone.image_placeholder() if hasattr(self.backbone, "image_placeholder") else ""
        views = placeholder * len(self.image_keys)
        # released: question = instruction.lower()
        return [views + self.config.prompt_template.format(instruction=str(t).strip().lower()) for t in tasks]

    def prefix(self, batch: dict, state: Tensor) -> VLMInputs:
        images = self.images(batch)
        extras = None
        if not self.is_flow_matching:
            extras = self.head.extras(state, self.backbone.decoder.embed_tokens.weight.dtype)
        return self.backbone.prepare_inputs(images, self.prompts(batch, images.shape[0]), extras=extras)

    def dim_mask(self, device: torch.device | str) -> Tensor:
        m = torch.zeros(self.config.max_action_dim, dtype=torch.bool, device=device)
        m[: self.action_dim] = True
        return m

    # ------------------------------------------------------------------ training
    def loss(self, batch: dict) -> tuple[Tensor, dict]:
        """Multi-exit training loss (paper section 3.3): FM -> masked MSE to noise - action; MLP -> masked L1."""
        cfg = self.config
        state = self.pad_state(batch)
        if self.training and cfg.state_mask_prob > 0:
            keep = (torch.rand(state.shape[0], 1, device=state.device) >= cfg.state_mask_prob).float()
            state = state * keep  # released: the whole proprio vector is zeroed per sample
        action = self.pad_action(batch[ACTION])
        b, t, _ = action.shape
        valid = self.dim_mask(action.device).view(1, 1, -1).expand(b, t, -1).clone()
        if "action_is_pad" in batch:
            valid &= ~batch["action_is_pad"].bool().unsqueeze(-1)
        inputs = self.prefix(batch, state)
        n_layers = self.num_layers
        info: dict = {}
        if cfg.exit_training == "random":
            r = sample_shared_layer(n_layers, action.device)
            run_layers, loss_layers = r + 1, [r]
            info["exit_layer"] = r
        elif cfg.exit_training == "all":
            run_layers, loss_layers = n_layers, list(range(n_layers))
        else:
            run_layers, loss_layers = n_layers, [n_layers - 1]
        denom = valid.sum().clamp_min(1)
        losses: dict[int, Tensor] = {}
        if self.is_flow_matching:
            out = self.backbone.stack.run(inputs, num_layers=run_layers, collect_kv=True, final_norm=False)
            prefix = [self.head.prefix_kv(i, kv) for i, kv in enumerate(out.key_values)]
            # One noise draw and one expert pass serve every exit (expert layer i only depends on layers <= i);
            # released: a separate expert run with its own noise per exit (n_layers times the compute).
            x_t, tt, target = A1_FLOW_MATCHING.training_pair(action)
            velocity = self.head(prefix, inputs.attention_mask, state, x_t, tt, loss_layers)
            for i, v in velocity.items():
                losses[i] = ((v - target).pow(2) * valid).sum() / denom  # eq. (1)
        else:
            out = self.backbone.stack.run(inputs, num_layers=run_layers, final_norm=False)
            norm = self.backbone.decoder.norm
            for i in loss_layers:
                q = norm(out.gather(i + 1, "query"))  # hidden_states[i + 1] = output of layer i
                pred = self.head(q)
                losses[i] = ((pred - action).abs() * valid).sum() / denom  # eq. (5)
        loss = torch.stack(list(losses.values())).mean()
        info["loss_last_exit"] = float(losses[max(losses)].detach())
        return loss, info

    # ------------------------------------------------------------------ inference
    def _walk(self, inputs: VLMInputs):
        """Yield (layer, state) layer by layer: FM -> the expert-mapped K/V list so far; MLP -> the normalised
        query states of that layer. Stopping the iteration stops the backbone."""
        stack = self.backbone.stack
        if self.is_flow_matching:
            prefix: list[tuple[Tensor, Tensor]] = []
            for i, _, kv in stack.iter_layers(inputs, collect_kv=True):
                prefix.append(self.head.prefix_kv(i, kv))
                yield i, prefix
        else:
            pos = inputs.extra_positions["query"]
            norm = self.backbone.decoder.norm
            for i, hidden, _ in stack.iter_layers(inputs):
                q = torch.gather(hidden, 1, pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
                yield i, norm(q)

    def _sample(
        self,
        prefix,
        mask,
        state,
        steps: int,
        x_init: Tensor | None,
        generator,
        guide: VelocityGuide | None = None,
    ) -> Tensor:
        """One Euler sweep (eq. 2) of ``steps`` steps over ``prefix`` from ``x_init`` (or fresh noise): (B, T, A_pad).
        ``guide`` wraps the velocity field (real-time chunking, ``heads.flow_matching.rtc_guided_velocity``)."""
        depth = len(prefix)
        b = state.shape[0]

        shape = (b, self.config.chunk_size, self.config.max_action_dim)
        like = torch.empty(
            b, 1 + shape[1], 1, device=state.device, dtype=self.head.action_in_proj.weight.dtype
        )
        attention = self.head.attention_inputs(
            prefix, mask, like
        )  # once per query, shared by the Euler steps

        def velocity(x, t):
            return self.head(prefix, mask, state, x, t, [depth - 1], attention=attention)[depth - 1]

        return A1_FLOW_MATCHING.sample(
            velocity if guide is None else guide(velocity),
            steps,
            x_init=x_init,
            shape=shape,
            device=state.device,
            generator=generator,
        )

    def predict_full_depth(
        self, batch: dict, generator: torch.Generator | None = None, guide: VelocityGuide | None = None
    ) -> Tensor:
        """(B, T, A_pad) at full depth: one backbone pass, then ``num_inference_steps`` Euler steps (FM)."""
        state = self.pad_state(batch)
        inputs = self.prefix(batch, state)
        if self.is_flow_matching:
            out = self.backbone.stack.run(inputs, collect_kv=True, final_norm=False)
            prefix = [self.head.prefix_kv(i, kv) for i, kv in enumerate(out.key_values)]
            return self._sample(
                prefix, inputs.attention_mask, state, self.config.num_inference_steps, None, generator, guide
            )
        out = self.backbone.stack.run(inputs, final_norm=True)
        return self.head(out.gather(-1, "query"))

    def discrepancy_dims(self, device: torch.device | str) -> Tensor | None:
        """(A_pad,) bool mask of the dims eq. (6) measures (``exit_discrepancy_dims``); None = all padded dims."""
        return None if self.config.exit_discrepancy_dims == "padded" else self.dim_mask(device)

    def predict_early_exit(
        self,
        batch: dict,
        thresholds: list[float] | None,
        steps: int | None = None,
        warm_start: bool | None = None,
        memory: Tensor | None = None,
        generator: torch.Generator | None = None,
        guide: VelocityGuide | None = None,
    ) -> tuple[ExitResult, int]:
        """Early-exit walk (section 3.3.1; with FM, 3.3.2's truncated denoising). ``thresholds=None`` never exits
        early and returns the full discrepancy matrix (calibration).

        Args:
            steps: Euler steps per prediction (default ``exit_fm_steps``).
            warm_start: start predictions from an earlier chunk (eq. 10; default ``exit_warm_start``); which
                chunk follows ``exit_warm_start_chain`` (configuration_a1.py).
            memory: (B, T, A_pad) chunk of the previous query of the episode, the warm start of the reference
                ("reference" chain) or of exit 1 ("released" chain, at run time).
            guide: velocity-field wrapper applied to every Euler step of every prediction (real-time chunking).

        Returns:
            (result, prefix length N).
        """
        cfg = self.config
        steps = cfg.exit_fm_steps if steps is None else steps
        warm = cfg.exit_warm_start if warm_start is None else warm_start
        # The released eval seeds exit 1 with the previous query's chunk and its reference with fresh noise; its
        # calibration (generate_action_values) chains fresh reference -> exit 1 -> ...
        released = cfg.exit_warm_start_chain == "released"
        seed_exit_one = released and thresholds is not None
        state = self.pad_state(batch)
        inputs = self.prefix(batch, state)
        mask = inputs.attention_mask
        if memory is not None and memory.shape[0] != state.shape[0]:
            memory = None  # another batch size: a new set of environments
        first_exit = self.exit_layers[0]

        def predict(layer: int, st, previous: Tensor | None) -> Tensor:
            if not self.is_flow_matching:
                return self.head(st)
            x_init = None
            if warm:
                if previous is None:  # the layer-0 reference
                    x_init = None if released else memory
                elif seed_exit_one and layer == first_exit:
                    x_init = memory
                else:
                    x_init = previous  # eq. (10): A^0(i+1) = A^1(i)
            return self._sample(st, mask, state, steps, x_init, generator, guide)

        controller = ExitController(
            self.exit_layers,
            thresholds,
            cfg.exit_metric,
            reference_layer=0,
            dim_mask=self.discrepancy_dims(state.device),
        )
        return controller.run(self._walk(inputs), predict), inputs.seq_len

    # ------------------------------------------------------------------ compute
    def vision_flops(self) -> int:
        """FLOPs of encoding one view (Molmo family: exact ViT layers run + pooling + connector; other families:
        2 x vision parameters x patch tokens, an approximation that ignores attention)."""
        bb = self.backbone
        if bb.family == "molmo":
            vc = bb.vision.config
            n = bb.patch_grid**2 + 1
            vit = (max(bb._feature_layers) + 1) * attention_mlp_flops(
                vc.hidden_size,
                vc.intermediate_size,
                vc.num_attention_heads,
                vc.num_attention_heads,
                vc.hidden_size // vc.num_attention_heads,
                n,
                n,
                gated_mlp=False,
            )
            feat = vc.hidden_size * len(bb._feature_layers)
            m = bb.num_image_tokens
            p = bb.cfg.pooling[0] * bb.cfg.pooling[1]
            # per pooled token: the mean query (wq), p keys and values (wk, wv) and the output (wo)
            pool = m * (
                linear_flops(feat, vc.hidden_size, 1 + 2 * p)
                + linear_flops(vc.hidden_size, vc.hidden_size, 1)
            )
            proj = bb.connector.image_projector
            conn = 2 * linear_flops(proj.w1.in_features, proj.w1.out_features, m) + linear_flops(
                proj.w2.in_features, proj.w2.out_features, m
            )
            return int(vit + pool + conn)
        _, vision = self.backbone_groups()
        return int(2 * sum(p.numel() for p in vision) * max(1, int(getattr(bb, "num_image_tokens", 1))))

    def layer_flops(self, prefix_len: int) -> int:
        cfg = self.backbone.decoder.config
        return attention_mlp_flops(
            self.backbone.hidden_size,
            cfg.intermediate_size,
            cfg.num_attention_heads,
            self.backbone.num_kv_heads,
            self.backbone.head_dim,
            prefix_len,
            prefix_len,
        )

    def query_flops(self, prefix_len: int, exit_layer: int | None, predictions: int, steps: int) -> int:
        """Analytic FLOPs of one sample's query: vision, ``exit_layer + 1`` backbone layers (all when None), and the
        head predictions made (``predictions`` chain points for early exit, each ``steps`` Euler steps with FM)."""
        n_views = len(self.image_keys)
        layers = self.num_layers if exit_layer is None else exit_layer + 1
        total = n_views * self.vision_flops() + layers * self.layer_flops(prefix_len)
        if self.is_flow_matching:
            h = self.head
            if exit_layer is None:
                total += steps * h.flops_per_step(self.num_layers, prefix_len)
            else:
                chain = [0] + [e for e in self.exit_layers if e <= exit_layer]
                total += sum(steps * h.flops_per_step(layer + 1, prefix_len) for layer in chain[:predictions])
            if h.project_kv:
                total += (
                    layers
                    * 2
                    * linear_flops(h.key_proj[0].in_features, h.key_proj[0].out_features, prefix_len)
                )
        else:
            total += (1 if exit_layer is None else predictions) * self.head.flops()
        return int(total)


# ====================================================================================== policy
class A1Policy(PreTrainedPolicy):
    """A1 for LeRobot: ``lerobot-train --policy.type=a1``; early exit once ``lerobot-a1-calibrate`` stored
    thresholds in the checkpoint."""

    config_class = A1Config
    name = "a1"
    # FSDP wrap units for LeRobot >= 0.6.2's --parallelism.dp_shard: the VLM's and the expert's Qwen2 layers
    _fsdp_wrap_modules = QWEN2_WRAP_MODULES

    def __init__(self, config: A1Config, *, weightless: bool = False, **kwargs):
        """``weightless=True``: random weights only, reading no weight file outside transformers (for parameter
        counts and benchmarks built inside ``weightless_pretrained``)."""
        super().__init__(config)
        config.validate_features()
        self.config = config
        self.model = A1Model(config, weightless=weightless)
        self.calibration: ExitCalibration | None = None
        self.exit_stats = ExitStats(num_layers=self.model.num_layers)
        self.last_exit_info: dict | None = None
        self._warm_memory: Tensor | None = None
        self._stats_hook_registered = False
        self._queue: deque = deque(maxlen=config.n_action_steps)
        self.rtc_processor = None
        self.init_rtc_processor()
        if config.compile_model:
            compile_repeated_blocks(self.model, config.compile_mode)

    # ------------------------------------------------------------------ real-time chunking
    def supports_rtc(self) -> bool:
        """Real-time chunking guides the flow-matching sampler; the MLP head has nothing to guide."""
        return self.config.head == "flow_matching"

    def init_rtc_processor(self) -> None:
        """LeRobot's ``RTCProcessor`` for ``config.rtc_config`` (lerobot-rollout --inference.type=rtc sets the
        config after loading the policy and calls this again)."""
        self.rtc_processor = None
        if self.config.rtc_config is not None and self.config.rtc_config.enabled:
            from lerobot.policies.rtc.modeling_rtc import RTCProcessor

            self.rtc_processor = RTCProcessor(self.config.rtc_config)

    def _rtc_guide(self, inference_delay, prev_chunk_left_over, execution_horizon):
        """The velocity wrapper of one RTC query, or None without RTC arguments."""
        if inference_delay is None and prev_chunk_left_over is None:
            return None
        if self.rtc_processor is None:
            raise RuntimeError(
                "a1: got real-time-chunking arguments (inference_delay / prev_chunk_left_over) but RTC is not set up; "
                "set policy.config.rtc_config and call policy.init_rtc_processor() (lerobot-rollout "
                "--inference.type=rtc does both)"
            )
        if not self.supports_rtc():
            raise RuntimeError(
                "a1: real-time chunking needs the flow-matching head (--policy.head=flow_matching)"
            )
        if prev_chunk_left_over is not None and prev_chunk_left_over.shape[-1] != self.model.action_dim:
            raise ValueError(
                f"a1: prev_chunk_left_over has {prev_chunk_left_over.shape[-1]} action dims, the policy predicts "
                f"{self.model.action_dim} (pass the unexecuted actions predict_action_chunk returned)"
            )
        return lambda velocity: rtc_guided_velocity(
            velocity,
            self.rtc_processor,
            prev_chunk_left_over,
            inference_delay,
            execution_horizon,
            action_dims=self.model.action_dim,
        )

    # ------------------------------------------------------------------ LeRobot contract
    def get_optim_params(self) -> list[dict]:
        """Parameter groups with the paper's learning rates (head 5e-5, VLM 5e-6; vision frozen by default)."""
        lm, vision = self.model.backbone_groups()
        backbone_ids = {id(p) for p in self.model.backbone.parameters()}
        head = [p for p in self.parameters() if id(p) not in backbone_ids and p.requires_grad]
        groups = [{"params": head, "lr": self.config.optimizer_lr, "a1_group": "head"}]
        lm = [p for p in lm if p.requires_grad]
        vision = [p for p in vision if p.requires_grad]
        if lm:
            groups.append({"params": lm, "lr": self.config.optimizer_vlm_lr, "a1_group": "vlm"})
        if vision:
            groups.append({"params": vision, "lr": self.config.optimizer_vision_lr, "a1_group": "vision"})
        return groups

    def reset(self) -> None:
        """Clear the action queue and the warm-start memory (every episode); start a new episode in the stats."""
        self._queue.clear()
        self._warm_memory = None
        self.exit_stats.new_episode()

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        loss, info = self.model.loss(batch)
        return loss, info

    @property
    def early_exit_active(self) -> bool:
        return self.config.use_early_exit and self.calibration is not None

    @torch.no_grad()
    def predict_action_chunk(
        self,
        batch: dict[str, Tensor],
        generator: torch.Generator | None = None,
        inference_delay: int | None = None,
        prev_chunk_left_over: Tensor | None = None,
        execution_horizon: int | None = None,
        **kwargs,
    ) -> Tensor:
        """(B, T, A) normalised action chunk. With a calibration, early exit (and truncated flow matching);
        otherwise full depth. Records the exit layer, executed-layer fraction and FLOPs of every sample in
        ``last_exit_info`` and (in eval mode) ``exit_stats``.

        Real-time chunking (``config.rtc_config`` + ``init_rtc_processor``, as lerobot-rollout
        --inference.type=rtc does): ``prev_chunk_left_over`` (B, T_prev, A) are the not-yet-executed actions of
        the previous chunk (as returned here) and ``inference_delay`` the actions executed while this one is
        computed; every Euler step of every prediction is guided towards that prefix (LeRobot's
        ``RTCProcessor``), at full depth and at each exit of an early-exit walk alike.
        """
        m = self.model
        guide = self._rtc_guide(inference_delay, prev_chunk_left_over, execution_horizon)
        if self.early_exit_active:
            res, n = m.predict_early_exit(
                batch,
                self.calibration.thresholds,
                memory=self._warm_memory,
                generator=generator,
                guide=guide,
            )
            chunk = res.actions
            if m.is_flow_matching and self.config.exit_warm_start:
                self._warm_memory = chunk.detach()
            layers = res.exit_layer.tolist()
            steps = self.config.exit_fm_steps
            # predictions per sample: the reference plus exits 0..k
            flops = [
                m.query_flops(n, layer, k + 2, steps)
                for layer, k in zip(layers, res.exit_index.tolist(), strict=True)
            ]
        else:
            chunk = m.predict_full_depth(batch, generator=generator, guide=guide)
            layers = [m.num_layers - 1] * chunk.shape[0]
            flops = [
                m.query_flops(self._prefix_len(batch), None, 1, self.config.num_inference_steps)
            ] * chunk.shape[0]
        self.last_exit_info = {
            "exit_layer": layers,
            "executed_layer_fraction": [(layer + 1) / m.num_layers for layer in layers],
            "flops": flops,
            "early_exit": self.early_exit_active,
        }
        if not self.training:
            for layer, f in zip(layers, flops, strict=True):
                self.exit_stats.add(layer, f)
            self._register_stats_hook()
        return chunk[..., : m.action_dim]

    def _prefix_len(self, batch: dict) -> int:
        """Prefix length of the first sample (for the FLOP estimate), without running the model."""
        bb = self.model.backbone
        views = len(self.model.image_keys)
        prompt = self.model.prompts(batch, 1)[0]
        if bb.family == "molmo":
            n = int(bb.prompt_ids(prompt, views).numel())
        elif hasattr(bb, "tokenizer"):
            n = len(bb.tokenizer(prompt, add_special_tokens=False).input_ids)
        else:  # a family without a text tokenizer attribute: the prompt characters as an upper bound
            n = len(prompt)
        if not self.model.is_flow_matching:  # the state token and the query tokens
            n += 1 + self.model.head.query.shape[0]
        return n

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        """(B, A): the next action of the current chunk; a new chunk is predicted every n_action_steps."""
        if len(self._queue) == 0:
            chunk = self.predict_action_chunk(batch)[:, : self.config.n_action_steps]
            self._queue.extend(chunk.transpose(0, 1))
        return self._queue.popleft()

    # ------------------------------------------------------------------ calibration
    def calibration_settings(self) -> dict:
        """Inference settings the discrepancies depend on; thresholds only transfer between equal settings."""
        c = self.config
        s = {
            "head": c.head,
            "exit_interval": c.exit_interval,
            "exit_metric": c.exit_metric,
            "exit_discrepancy_dims": c.exit_discrepancy_dims,
        }
        if c.head == "flow_matching":
            s.update(
                exit_fm_steps=c.exit_fm_steps,
                exit_warm_start=c.exit_warm_start,
                exit_warm_start_chain=c.exit_warm_start_chain,
                expert_position_offset=c.expert_position_offset,
            )
        return s

    def set_exit_calibration(self, calibration: ExitCalibration | None, source: str = "calibration") -> None:
        """Use ``calibration``'s thresholds for early exit; refuses thresholds made for another model."""
        if calibration is None:
            self.calibration = None
            return
        m = self.model
        if calibration.num_layers != m.num_layers or list(calibration.exit_layers) != m.exit_layers:
            raise ValueError(
                f"a1: the exit thresholds in {source} were calibrated for a {calibration.num_layers}-layer backbone with exits "
                f"{calibration.exit_layers}, but this model has {m.num_layers} layers and exits {m.exit_layers}; re-run "
                "lerobot-a1-calibrate on this checkpoint"
            )
        ours = self.calibration_settings()
        # settings added after a calibration was written default to the config defaults of that time
        fields = type(self.config).__dataclass_fields__
        stored = {k: calibration.settings.get(k, fields[k].default) for k in ours}
        diff = {k: (stored[k], v) for k, v in ours.items() if stored[k] != v}
        if diff:
            desc = ", ".join(f"{k}: calibrated {a!r}, policy {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"a1: the exit thresholds in {source} were calibrated with other settings ({desc}); set them back or recalibrate"
            )
        if len(calibration.thresholds) != len(m.exit_layers):
            raise ValueError(
                f"a1: {source} has {len(calibration.thresholds)} thresholds for {len(m.exit_layers)} exits"
            )
        self.calibration = calibration

    def load_exit_calibration(self, directory: str | Path) -> bool:
        path = Path(directory) / CALIBRATION_FILE
        if not path.is_file():
            return False
        self.set_exit_calibration(ExitCalibration.load(path), source=str(path))
        return True

    def _save_pretrained(self, save_directory: Path, state_dict: dict[str, Tensor] | None = None) -> None:
        """LeRobot's config.json + model.safetensors, plus the exit calibration; works under LeRobot 0.6.1's and
        0.6.2's callers (``lerobot_vla_plugins.compat``)."""
        save_with_lerobot(super(), Path(save_directory), state_dict)
        if self.calibration is not None and is_main_process():
            (Path(save_directory) / CALIBRATION_FILE).write_text(self.calibration.to_json())

    @classmethod
    def from_pretrained(
        cls,
        pretrained_name_or_path: str | Path,
        *,
        config: A1Config | None = None,
        load_calibration: bool = True,
        **kwargs,
    ) -> A1Policy:
        """LeRobot's loader, plus the exit calibration stored next to the weights (``load_calibration``)."""
        policy = super().from_pretrained(pretrained_name_or_path, config=config, **kwargs)
        if not load_calibration:
            return policy
        local = Path(str(pretrained_name_or_path))
        if local.is_dir():
            policy.load_exit_calibration(local)
        else:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

            try:
                path = hf_hub_download(
                    str(pretrained_name_or_path), CALIBRATION_FILE, revision=kwargs.get("revision")
                )
                policy.load_exit_calibration(Path(path).parent)
            except (EntryNotFoundError, LocalEntryNotFoundError):
                pass
        if policy.calibration is not None:
            logger.info("a1: early exit with thresholds %s", policy.calibration.thresholds)
        return policy

    # ------------------------------------------------------------------ exit statistics next to eval_info.json
    def write_exit_stats(self, path: str | Path) -> Path:
        return self.exit_stats.write(path)

    def _register_stats_hook(self) -> None:
        """Under ``lerobot-eval``, write ``a1_exit_stats.json`` next to ``eval_info.json`` when the process ends.

        LeRobot's eval loop has no hook for plugins; the policy learns the output directory from the command line
        (``--output_dir``) or, when lerobot-eval chose it, as the newest ``outputs/eval/**/eval_info.json`` written
        by this process.
        """
        if self._stats_hook_registered or not _running_lerobot_eval():
            return
        self._stats_hook_registered = True
        start = time.time()
        atexit.register(_write_stats_next_to_eval_info, self.exit_stats, start)


def _running_lerobot_eval() -> bool:
    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    return argv0 in ("lerobot-eval", "lerobot_eval.py") or os.environ.get("A1_EXIT_STATS_DIR") is not None


def _eval_output_dir(argv: list[str]) -> Path | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--output_dir="):
            return Path(arg.split("=", 1)[1])
        if arg == "--output_dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
    return None


def _write_stats_next_to_eval_info(stats: ExitStats, start_time: float) -> Path | None:
    if len(stats) == 0:
        return None
    env_dir = os.environ.get("A1_EXIT_STATS_DIR")
    out = Path(env_dir) if env_dir else _eval_output_dir(sys.argv[1:])
    if out is None:
        candidates = [
            p for p in Path("outputs/eval").glob("**/eval_info.json") if p.stat().st_mtime >= start_time
        ]
        out = max(candidates, key=lambda p: p.stat().st_mtime).parent if candidates else None
    if out is None or not (out / "eval_info.json").is_file():
        logger.warning(
            "a1: no eval_info.json found; exit statistics not written (policy.write_exit_stats(path) writes them)"
        )
        return None
    path = stats.write(out.absolute() / EXIT_STATS_FILE)
    logger.info("a1: exit statistics written to %s", path)
    return path
