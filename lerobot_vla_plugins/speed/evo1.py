"""Opt-in inference speed-ups for LeRobot's upstream ``evo1`` policy, each equal to the reference path.

``accelerate_evo1(policy)`` changes how an already built (or loaded) ``Evo1Policy`` computes, not what: the
tests (``tests/test_speed_evo1.py``) compare its action chunks with the unmodified policy on the same inputs and
random draws. Three independent switches:

* ``cache_context_kv``: the action head's cross-attention keys and values depend only on the context
  (VLM tokens ++ state token), which is fixed during the ``num_inference_timesteps`` Euler steps of one query;
  upstream recomputes their projections (``2 * N_ctx * D * 2D`` multiply-adds per block) at every step. They are
  computed once per query and every step only projects the queries (50 action tokens). The attention itself
  runs through ``F.scaled_dot_product_attention`` with the same key-padding mask.
* ``skip_absent_views``: upstream pads missing cameras (``max_views=3``; Meta-World has 1) with zero images and
  runs the vision tower on them, then masks their tokens out of every attention. Their features can therefore be
  anything: only the present views go through the vision tower (the absent slots are filled with zeros). Under the
  official Evo-1 context (``processors.evo1.official_context``) the head attends to the absent views' tokens, so
  this switch then leaves the vision tower on every view.
* ``attn_implementation``: the InternVL attention kernel. Upstream asks for FlashAttention-2 and falls back to
  ``"eager"`` when it is missing (always on CPU); ``"sdpa"`` uses PyTorch's fused attention. None keeps it.

RTC-guided sampling (``rtc_processor``) is left on the reference path.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812

if TYPE_CHECKING:
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy


def _context_kv(block, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of one ``BasicTransformerBlock``'s cross-attention over ``context`` (B, N, D).

    Returns two ``(B, h, N, D/h)`` tensors, the in-projection ``nn.MultiheadAttention`` would apply.
    """
    mha = block.attn
    d, h = mha.embed_dim, mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    bsz, n, _ = context.shape
    k = F.linear(context, w[d : 2 * d], None if b is None else b[d : 2 * d])
    v = F.linear(context, w[2 * d :], None if b is None else b[2 * d :])
    return (t.view(bsz, n, h, d // h).transpose(1, 2) for t in (k, v))


def _block_with_cached_kv(block, actions, k, v, attn_mask, time_emb):
    """``BasicTransformerBlock.forward`` with precomputed keys/values (eval mode: attention dropout is off).

    actions ``(B, T, D)`` -> ``(B, T, D)``: ``x = a + MHA(LN1(a), ctx); x + FF(LN2(x) + t)``.
    """
    mha = block.attn
    d, h = mha.embed_dim, mha.num_heads
    bsz, t, _ = actions.shape
    b = mha.in_proj_bias
    q = F.linear(block.norm1(actions), mha.in_proj_weight[:d], None if b is None else b[:d])
    q = q.view(bsz, t, h, d // h).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    x = actions + mha.out_proj(out.transpose(1, 2).reshape(bsz, t, d))
    x2 = block.norm2(x)
    if time_emb is not None:
        x2 = x2 + time_emb.unsqueeze(1)
    return x + block.ff(x2)


def _cached_get_action(
    self,
    fused_tokens,
    state=None,
    embodiment_id=None,
    action_mask=None,
    context_mask=None,
    inference_delay=None,
    prev_chunk_left_over=None,
    execution_horizon=None,
    rtc_processor=None,
):
    """``FlowmatchingActionHead.get_action`` with the context keys/values computed once per query.

    Same random draw (uniform noise in [-1, 1]), same Euler steps t = i/N with time index int(t * 999), same
    masking as upstream; only where the K/V projections happen changes.
    """
    if rtc_processor is not None and (inference_delay is not None or prev_chunk_left_over is not None):
        return self._reference_get_action(
            fused_tokens,
            state=state,
            embodiment_id=embodiment_id,
            action_mask=action_mask,
            context_mask=context_mask,
            inference_delay=inference_delay,
            prev_chunk_left_over=prev_chunk_left_over,
            execution_horizon=execution_horizon,
            rtc_processor=rtc_processor,
        )
    bsz = fused_tokens.size(0)
    device = fused_tokens.device
    context, key_padding_mask, embodiment_id = self._prepare_context(
        fused_tokens, state, embodiment_id, context_mask
    )
    action = torch.rand(bsz, self.action_dim, device=device, dtype=context.dtype) * 2 - 1
    seq = action.view(bsz, self.horizon, self.per_action_dim)
    mask = self._expand_action_mask(
        action_mask, batch_size=bsz, per_action_dim=self.per_action_dim, device=seq.device, dtype=seq.dtype
    )
    seq = seq * mask
    dtype = self.dtype
    context = context.to(dtype=dtype)
    kv = [tuple(_context_kv(block, context)) for block in self.transformer_blocks]  # once per query
    attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    steps = int(self.num_inference_timesteps)
    if steps <= 0:
        raise ValueError(f"num_inference_timesteps must be positive, got {steps}")
    dt = 1.0 / steps
    table = self.time_pos_enc(1000)
    for i in range(steps):
        index = min(int(i / steps * 999), 999)
        time_emb = table[:, index, :].to(device).squeeze(0).to(dtype=dtype).unsqueeze(0).repeat(bsz, 1)
        x = self._project_actions(seq * mask, embodiment_id).to(dtype=dtype)
        for block, (k, v) in zip(self.transformer_blocks, kv, strict=True):
            x = _block_with_cached_kv(block, x, k, v, attn_mask, time_emb)
        x = self.norm_out(x)
        pooled = self.seq_pool_proj(x.reshape(bsz, -1)) if self.horizon > 1 else x.squeeze(1)
        velocity = self.mlp_head(pooled, embodiment_id).view(bsz, self.horizon, self.per_action_dim) * mask
        seq = seq + dt * velocity
    return (seq * mask).reshape(bsz, -1)


def _fused_embedding_present_views(self, camera_images, image_masks, text_prompts, return_cls_only=True):
    """``InternVL3Embedder.get_fused_image_text_embedding_batched`` running the vision tower on present views only
    (all views while the official context makes the head attend to the absent ones)."""
    from lerobot_vla_plugins.processors.evo1 import ATTENDS_ABSENT_VIEWS

    model = self.model
    present = image_masks.to(torch.bool).reshape(-1)  # (B * V,), row-major like pixel_values
    if bool(present.all()) or getattr(self, ATTENDS_ABSENT_VIEWS, False):
        return self._reference_fused_embedding(camera_images, image_masks, text_prompts, return_cls_only)
    reference = type(model).get_image_features

    def present_view_features(pixel_values, **kwargs):
        out = reference(model, pixel_values[present.to(pixel_values.device)], **kwargs)
        feats = out.pooler_output
        full = feats.new_zeros(pixel_values.shape[0], *feats.shape[1:])  # absent views: masked out downstream
        full[present.to(feats.device)] = feats
        out.pooler_output = full
        return out

    model.get_image_features = present_view_features
    try:
        return self._reference_fused_embedding(camera_images, image_masks, text_prompts, return_cls_only)
    finally:
        del model.get_image_features


def accelerate_evo1(
    policy: Evo1Policy,
    cache_context_kv: bool = True,
    skip_absent_views: bool = True,
    attn_implementation: str | None = "sdpa",
) -> Evo1Policy:
    """Switch on the speed-ups on an ``Evo1Policy`` in place; returns the policy.

    Args:
        cache_context_kv: compute the head's cross-attention keys/values once per query.
        skip_absent_views: run the vision tower on present cameras only.
        attn_implementation: InternVL attention kernel ("sdpa", "eager", "flash_attention_2"), None to keep it.
    """
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy

    if not isinstance(policy, Evo1Policy):
        raise TypeError(f"accelerate_evo1 expects LeRobot's Evo1Policy, got {type(policy).__name__}")
    head, embedder = policy.model.action_head, policy.model.embedder
    if cache_context_kv and not hasattr(head, "_reference_get_action"):
        head._reference_get_action = head.get_action
        head.get_action = types.MethodType(_cached_get_action, head)
    if skip_absent_views and not hasattr(embedder, "_reference_fused_embedding"):
        embedder._reference_fused_embedding = embedder.get_fused_image_text_embedding_batched
        embedder.get_fused_image_text_embedding_batched = types.MethodType(
            _fused_embedding_present_views, embedder
        )
    if attn_implementation is not None:
        embedder.model.set_attn_implementation(attn_implementation)
    return policy
