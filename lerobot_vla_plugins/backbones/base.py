"""The VLM backbone interface shared by every policy of the collection.

A backbone turns a batch of images and prompts (plus optional extra token embeddings such as learnable
query tokens) into a *prefix* for its language model, then runs the language model's decoder layers over
it and returns what the action heads need:

* the hidden states of every layer run (VLA-Adapter's Raw and ActionQuery conditions, A1's MLP head);
* the per-layer keys and values (A1's flow-matching expert attends to layer i's K/V in its layer i);
* where the image, text and extra tokens sit in the sequence.

Families (InternVL, Prismatic, Molmo-style) differ only in how they encode images and lay out the prompt;
the decoder runner (``DecoderStack``) is written once here for the Llama/Qwen2-style decoders of
transformers. It supports truncation to the first k layers (Evo-1 keeps 14 of 24) and layer-by-layer
execution (A1's early exit).

Dimension names: B batch, V views, N tokens, D width, L layers, H heads, Dh head dim.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class VLMInputs:
    """A language-model prefix: embeddings plus where each kind of token sits.

    Attributes:
        inputs_embeds: (B, N, D) token embeddings, images already spliced in.
        attention_mask: (B, N) bool, True for real tokens (False for padding and masked-out views).
        position_ids: (B, N) long rotary positions.
        image_positions: (B, V*N_img) long indices of the image tokens, view-major.
        extra_positions: name -> (B, n) long indices of each extra segment (e.g. ``"query"``).
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    image_positions: Tensor
    extra_positions: dict[str, Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.inputs_embeds.shape[0]

    @property
    def seq_len(self) -> int:
        return self.inputs_embeds.shape[1]


@dataclass
class VLMOutput:
    """What the decoder returns for a prefix.

    Attributes:
        hidden_states: list of (B, N, D), HF convention: entry 0 is the embedding output, entry l the
            output of layer l; the last entry is after the final norm when ``final_norm`` was requested
            (as ``output_hidden_states`` of transformers returns it).
        key_values: per layer run, (keys, values), each (B, H_kv, N, Dh); empty unless requested.
        inputs: the prefix that was run.
    """

    hidden_states: list[Tensor]
    key_values: list[tuple[Tensor, Tensor]]
    inputs: VLMInputs

    @property
    def last_hidden_state(self) -> Tensor:
        return self.hidden_states[-1]

    def gather(self, layer: int, name: str) -> Tensor:
        """Hidden states of ``layer`` at the positions of segment ``name`` ("image" or an extra name): (B, n, D)."""
        positions = self.inputs.image_positions if name == "image" else self.inputs.extra_positions[name]
        states = self.hidden_states[layer]
        return torch.gather(states, 1, positions.unsqueeze(-1).expand(-1, -1, states.shape[-1]))


class _CaptureKV:
    """Stands in for a cache during one layer call and keeps the keys/values its attention computed."""

    def __init__(self):
        self.kv: tuple[Tensor, Tensor] | None = None

    def update(
        self, key_states: Tensor, value_states: Tensor, layer_idx: int, cache_kwargs: dict | None = None
    ) -> tuple[Tensor, Tensor]:
        self.kv = (key_states, value_states)
        return key_states, value_states


class PrefixKV:
    """Stands in for a cache during one layer call: the layer's attention reads fixed prefix keys/values
    followed by its own.

    ``update`` returns ``(cat(prefix_keys, keys), cat(prefix_values, values))`` along the sequence axis, what a
    ``DynamicCache`` filled with the prefix returns for that layer, without building a cache over every layer on
    each call. Holding only its own layer's tensors also keeps ``torch.compile``'s guards per layer, so one
    compiled decoder-layer graph serves every layer (``lerobot_vla_plugins.speed.compile``).
    """

    def __init__(self, keys: Tensor, values: Tensor):
        self.keys, self.values = keys, values

    def update(
        self, key_states: Tensor, value_states: Tensor, layer_idx: int, cache_kwargs: dict | None = None
    ) -> tuple[Tensor, Tensor]:
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def _layer_forward(
    self, hidden_states: Tensor, *args, vla_return_kv: bool = False, vla_checkpoint: bool = False, **kwargs
):
    """Forward of a decoder layer that can also return its keys/values and recompute itself in backward.

    Installed on each decoder layer (``DecoderStack.install``) so that the K/V are outputs of the layer's own
    forward. That matters under FSDP: a shard unit's backward hooks are attached to its outputs, and K/V read
    from a cache would carry gradients into the unit without passing through them. Checkpointing runs inside
    the unit for the same reason (its parameters are gathered again before the recomputation).
    """
    cls_forward = type(self).forward

    def body(h: Tensor):
        if not vla_return_kv:  # also the path of the model's own forward, which passes its cache itself
            return (cls_forward(self, h, *args, **kwargs),)
        capture = _CaptureKV()
        out = cls_forward(self, h, *args, **{**kwargs, "past_key_values": capture, "use_cache": True})
        return out, *capture.kv

    if vla_checkpoint:
        from torch.utils.checkpoint import checkpoint

        outs = checkpoint(body, hidden_states, use_reentrant=False)
    else:
        outs = body(hidden_states)
    return outs if vla_return_kv else outs[0]


class DecoderStack:
    """Runs a transformers Llama/Qwen2-style decoder (``embed_tokens``, ``layers``, ``norm``, ``rotary_emb``)
    over a prefix, layer by layer.

    The layers are called exactly as the model's own ``forward`` calls them (same masks, rotary
    embeddings), so outputs equal ``model(inputs_embeds=..., output_hidden_states=True)``. Per-layer K/V
    come back as outputs of each layer call (see ``_layer_forward``), which keeps the stack usable under
    DDP and FSDP (one shard unit per decoder layer).
    """

    def __init__(self, decoder: nn.Module, gradient_checkpointing: bool = False):
        for attr in ("layers", "norm", "rotary_emb", "config"):
            if not hasattr(decoder, attr):
                raise TypeError(f"{type(decoder).__name__} is not a Llama/Qwen2-style decoder: no '{attr}'")
        self.decoder = decoder
        #: recompute each layer in the backward pass instead of keeping its activations (training only)
        self.gradient_checkpointing = gradient_checkpointing
        self.install(decoder)

    @staticmethod
    def install(decoder: nn.Module) -> None:
        """Give every decoder layer the K/V-returning forward (idempotent; survives FSDP wrapping and deepcopy).

        Runs once per layer list: ``backbone.stack`` builds a DecoderStack on every forward, and a later
        ``truncate_layers`` or FSDP wrapping keeps the installed layers.
        """
        import types

        if decoder.__dict__.get("_vla_installed_layers") is decoder.layers:
            return
        for layer in decoder.layers:
            inner = getattr(layer, "_fsdp_wrapped_module", layer)
            if getattr(inner.forward, "__func__", None) is not _layer_forward:
                inner.forward = types.MethodType(_layer_forward, inner)
        object.__setattr__(decoder, "_vla_installed_layers", decoder.layers)

    @property
    def num_layers(self) -> int:
        return len(self.decoder.layers)

    def _prepare(self, inputs: VLMInputs):
        from transformers.masking_utils import create_causal_mask

        config = self.decoder.config
        mask = create_causal_mask(
            config=config,
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask.to(torch.long),
            past_key_values=None,
            position_ids=inputs.position_ids,
        )
        position_embeddings = self.decoder.rotary_emb(inputs.inputs_embeds, inputs.position_ids)
        return mask, position_embeddings

    def iter_layers(
        self, inputs: VLMInputs, num_layers: int | None = None, collect_kv: bool = False
    ) -> Iterator[tuple[int, Tensor, tuple[Tensor, Tensor] | None]]:
        """Yield ``(layer_index, hidden (B, N, D), (keys, values) or None)`` after each layer.

        Keys/values are (B, KV heads, N, head dim), after RoPE. The caller may stop early (A1's early
        exit): the remaining layers are never computed.
        """
        n = self.num_layers if num_layers is None else num_layers
        if not 0 < n <= self.num_layers:
            raise ValueError(f"num_layers must be in [1, {self.num_layers}], got {n}")
        mask, position_embeddings = self._prepare(inputs)
        hidden = inputs.inputs_embeds
        layer_types = getattr(self.decoder.config, "layer_types", None)
        checkpointing = self.gradient_checkpointing and self.decoder.training and torch.is_grad_enabled()
        for i, layer in enumerate(self.decoder.layers[:n]):
            if layer_types is not None and layer_types[i] != "full_attention":
                raise NotImplementedError(
                    f"layer {i} uses {layer_types[i]!r}; only full attention is supported"
                )
            out = layer(
                hidden,
                attention_mask=mask,
                position_embeddings=position_embeddings,
                position_ids=inputs.position_ids,
                vla_return_kv=collect_kv,
                vla_checkpoint=checkpointing,
            )
            if collect_kv:
                hidden, keys, values = out
                yield i, hidden, (keys, values)
            else:
                hidden = out
                yield i, hidden, None

    def run(
        self,
        inputs: VLMInputs,
        num_layers: int | None = None,
        collect_kv: bool = False,
        final_norm: bool = True,
    ) -> VLMOutput:
        """Run the first ``num_layers`` layers (all by default).

        Args:
            final_norm: apply the decoder's final norm to the last hidden state (as transformers does).
        """
        hidden_states = [inputs.inputs_embeds]
        key_values: list[tuple[Tensor, Tensor]] = []
        for _, hidden, kv in self.iter_layers(inputs, num_layers, collect_kv):
            hidden_states.append(hidden)
            if kv is not None:
                key_values.append(kv)
        if final_norm:
            hidden_states[-1] = self.decoder.norm(hidden_states[-1])
        return VLMOutput(hidden_states=hidden_states, key_values=key_values, inputs=inputs)


def assemble_prefix(
    token_embeds: list[Tensor],
    image_embeds: list[Tensor],
    image_slots: list[Tensor],
    extras: dict[str, Tensor] | None = None,
    extra_valid: dict[str, Tensor] | None = None,
    inline: dict[str, tuple[list[Tensor], list[Tensor]]] | None = None,
) -> VLMInputs:
    """Build a right-padded batch prefix from per-sample pieces.

    Each sample's sequence is its token embeddings with ``image_embeds[b]`` written at ``image_slots[b]``
    (and each ``inline`` segment written at its own slots), followed by each extra segment in order
    (e.g. learnable query tokens appended after the prompt).

    Args:
        token_embeds: per sample, (N_b, D) embeddings of the tokenised prompt (image slots included).
        image_embeds: per sample, (M_b, D) image token embeddings (M_b = number of slots).
        image_slots: per sample, (M_b,) long positions in the prompt that receive the image embeddings.
        extras: name -> (B, n, D) embeddings appended after the prompt, in the dict's order.
        extra_valid: name -> (B, n) bool; False marks extra tokens other tokens must not attend to.
        inline: name -> (per-sample (n, D) embeddings, per-sample (n,) long slots): embeddings that
            replace placeholder tokens inside the prompt (VITA-VLA's state and action tokens); their
            positions are reported in ``extra_positions[name]`` like an extra segment's.

    Returns:
        A ``VLMInputs`` with right padding, ``position_ids`` counting only real tokens.
    """
    extras = extras or {}
    extra_valid = extra_valid or {}
    inline = inline or {}
    for name in inline:
        if name in extras:
            raise ValueError(f"segment {name!r} is given both inline and as an appended extra")
    batch = len(token_embeds)
    device, dtype = token_embeds[0].device, token_embeds[0].dtype
    extra_len = sum(e.shape[1] for e in extras.values())
    lengths = [t.shape[0] + extra_len for t in token_embeds]
    n_max = max(lengths)
    width = token_embeds[0].shape[-1]
    embeds = torch.zeros(batch, n_max, width, device=device, dtype=dtype)
    mask = torch.zeros(batch, n_max, dtype=torch.bool, device=device)
    extra_positions = {
        name: torch.zeros(batch, e.shape[1], dtype=torch.long, device=device) for name, e in extras.items()
    }
    for name, (_, slots) in inline.items():
        extra_positions[name] = torch.stack([s.to(device=device, dtype=torch.long) for s in slots])
    n_img = max(int(s.numel()) for s in image_slots) if image_slots else 0
    image_positions = torch.zeros(batch, n_img, dtype=torch.long, device=device)
    for b in range(batch):
        prompt = token_embeds[b]
        if image_slots[b].numel():
            prompt = prompt.index_put((image_slots[b],), image_embeds[b].to(dtype))
            image_positions[b, : image_slots[b].numel()] = image_slots[b]
        for embeds_b, slots_b in ((e[b], sl[b]) for e, sl in inline.values()):
            prompt = prompt.index_put((slots_b.to(device),), embeds_b.to(dtype))
        n = prompt.shape[0]
        embeds[b, :n] = prompt
        mask[b, :n] = True
        for name, e in extras.items():
            k = e.shape[1]
            embeds[b, n : n + k] = e[b].to(dtype)
            valid = extra_valid.get(name)
            mask[b, n : n + k] = True if valid is None else valid[b]
            extra_positions[name][b] = torch.arange(n, n + k, device=device)
            n += k
    position_ids = (torch.cumsum(mask.long(), dim=1) - 1).clamp_min(0)
    return VLMInputs(
        inputs_embeds=embeds,
        attention_mask=mask,
        position_ids=position_ids,
        image_positions=image_positions,
        extra_positions=extra_positions,
    )


class VLMBackbone(nn.Module):
    """Base class of the backbone families. Subclasses provide ``decoder`` (the language model's decoder),
    ``embed_tokens`` and ``prepare_inputs``; everything else is shared.
    """

    #: family name used in configs (``backbone_family``)
    family: str = ""
    #: recompute decoder layers in the backward pass (``DecoderStack.gradient_checkpointing``); set by the policy
    gradient_checkpointing: bool = False

    @property
    def decoder(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def stack(self) -> DecoderStack:
        return DecoderStack(self.decoder, gradient_checkpointing=self.gradient_checkpointing)

    @property
    def hidden_size(self) -> int:
        return int(self.decoder.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.decoder.layers)

    @property
    def num_kv_heads(self) -> int:
        cfg = self.decoder.config
        return int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)

    @property
    def head_dim(self) -> int:
        cfg = self.decoder.config
        return int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)

    def truncate_layers(self, num_layers: int | None) -> None:
        """Keep only the first ``num_layers`` decoder layers (Evo-1 keeps 14 of Qwen2.5-0.5B's 24)."""
        if num_layers is None:
            return
        if not 0 < num_layers <= self.num_layers:
            raise ValueError(f"num_layers must be in [1, {self.num_layers}], got {num_layers}")
        self.decoder.layers = nn.ModuleList(list(self.decoder.layers)[:num_layers])
        self.decoder.config.num_hidden_layers = num_layers
        if getattr(self.decoder.config, "layer_types", None) is not None:
            self.decoder.config.layer_types = self.decoder.config.layer_types[:num_layers]

    def prepare_inputs(
        self, images: Tensor, prompts: list[str], extras: dict[str, Tensor] | None = None, **kwargs
    ) -> VLMInputs:  # pragma: no cover - abstract
        """Build the prefix for ``images`` (B, V, 3, H, W) in [0, 1] and ``prompts``; ``extras`` as in
        ``assemble_prefix``."""
        raise NotImplementedError

    def forward(
        self,
        images: Tensor,
        prompts: list[str],
        extras: dict[str, Tensor] | None = None,
        num_layers: int | None = None,
        collect_kv: bool = False,
        final_norm: bool = True,
        **kwargs,
    ) -> VLMOutput:
        inputs = self.prepare_inputs(images, prompts, extras=extras, **kwargs)
        return self.stack.run(inputs, num_layers=num_layers, collect_kv=collect_kv, final_norm=final_norm)
