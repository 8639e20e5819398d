"""Bridge Attention (VLA-Adapter, section 3.3, eq. (1)) and the L1 "Policy with Bridge Attention".

Each policy layer l lets the action latent x (B, T, D) attend, in **one joint softmax**, over three key sets:

* itself (self attention);
* the ActionQuery latents of VLM layer l concatenated with the proprio token (B, N_q + 1, D), ungated;
* the Raw latents of VLM layer l (the states at the image positions, (B, N_raw, D)), whose attention
  *logits* are multiplied by tanh(g), g a learnable scalar per layer initialised at 0.

The paper's text describes three attentions concatenated with the Raw branch's *output* scaled by tanh(g);
the released code (``prismatic/models/action_heads.py``) computes one softmax over the concatenated keys and
scales the Raw *logits*. We follow the code: the released checkpoints were trained with it, and at g = 0 it
spreads uniform attention mass over the Raw keys instead of ignoring them.

Two released variants:

* ``original`` (``MLPResNetBlock``): one shared q/k/v/o projection for all sources, no positions;
* ``pro`` (``MLPResNetBlock_Pro``, the default): separate K/V projections per source, and rotary positions
  applied to q and the self keys (positions 0..T-1), to the condition keys (0..N_q) and to the Raw keys
  (0..N_raw-1), each sequence from 0. We keep the released layout quirk: cos/sin tables are laid out
  half-split (``cat([freqs, freqs])``) while ``rotate_half`` pairs even/odd channels. The Pro block's
  ``film_gen`` layer is never used by the released forward and is not built here.

RoPE tables (``rope_table``): the released head was trained and evaluated as a bf16 module
(``action_head.to(torch.bfloat16)`` in ``finetune.py`` and ``openvla_utils.py``), which casts its
``inv_freq`` buffer to bf16; positions are then ``arange`` in bf16 and the angles and cos/sin are bf16 too. bf16
holds integers exactly only up to 256, so positions 257..511 of the Raw keys round to even numbers (385 distinct
positions of 512) and every angle carries bf16 rounding. ``"released"`` builds the table that way (then casts
it to the compute dtype), which is what converted released checkpoints need; ``"exact"`` builds it in float32
(the table an fp32 module of the released code builds).

Dimension names: B batch, T chunk, L layers, N tokens, D width, A action dim, H heads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

VARIANTS = ("original", "pro")
ROPE_TABLES = ("exact", "released")
_TABLE_DTYPE = {"exact": torch.float32, "released": torch.bfloat16}


def released_rope_tables(
    length: int,
    head_dim: int,
    device: torch.device | str | None,
    dtype: torch.dtype,
    base: float = 10000.0,
    table: str = "exact",
) -> tuple[Tensor, Tensor]:
    """cos, sin tables (length, head_dim) of the released ``RotaryPositionEmbedding`` (half-split layout):
    ``inv_freq = 1 / base^(2i / head_dim)``, angle(p, i) = p * inv_freq_i, ``emb = cat([angles, angles])``.

    Args:
        table: ``"exact"`` computes in float32; ``"released"`` computes inv_freq, the positions, the angles and
            cos/sin in bf16, as the released bf16 module does (module docstring).
    """
    table_dtype = _TABLE_DTYPE[table]
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    inv_freq = inv_freq.to(table_dtype)  # the released buffer, cast with the module
    t = torch.arange(length, device=device, dtype=table_dtype)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def released_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, H, N, Dh) as the released ``apply_rope``: ``x*cos + rotate_half(x)*sin`` with an
    interleaved ``rotate_half`` ((x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...))."""
    x1, x2 = x[..., ::2], x[..., 1::2]
    rotated = torch.stack((-x2, x1), dim=-1).reshape_as(x)
    return x * cos + rotated * sin


class BridgeAttention(nn.Module):
    """Eq. (1): the action latent attends over [itself; ActionQuery + proprio; tanh(g)-gated Raw].

    Args:
        dim: width D of the latent and of every condition.
        num_heads: attention heads (8 in the paper).
        variant: ``"original"`` (shared projections) or ``"pro"`` (per-source K/V + RoPE).
        rope_table: ``"exact"`` or ``"released"`` RoPE tables (pro only; module docstring).
    """

    def __init__(self, dim: int, num_heads: int = 8, variant: str = "pro", rope_table: str = "exact"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if rope_table not in ROPE_TABLES:
            raise ValueError(f"rope_table must be one of {ROPE_TABLES}, got {rope_table!r}")
        self.rope_table = rope_table
        if dim % num_heads or (dim // num_heads) % 2:
            raise ValueError(f"width {dim} must split into {num_heads} heads of even size")
        self.dim, self.num_heads, self.head_dim, self.variant = dim, num_heads, dim // num_heads, variant
        self.q_proj = nn.Linear(dim, dim)
        if variant == "original":
            self.k_proj = nn.Linear(dim, dim)
            self.v_proj = nn.Linear(dim, dim)
        else:
            self.k_self, self.v_self = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.k_cond, self.v_cond = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.k_raw, self.v_raw = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)
        # the "Ratio" g of the paper, initialised at 0 (tanh(0) = 0)
        self.gate = nn.Parameter(torch.zeros(1))

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, cond: Tensor, raw: Tensor) -> Tensor:
        """x (B, T, D) action latent; cond (B, N_c, D) ActionQuery latents + proprio token; raw (B, N_raw, D)
        Raw latents -> (B, T, D)."""
        if self.variant == "original":
            ks = [self.k_proj(x), self.k_proj(cond), self.k_proj(raw)]
            vs = [self.v_proj(x), self.v_proj(cond), self.v_proj(raw)]
        else:
            ks = [self.k_self(x), self.k_cond(cond), self.k_raw(raw)]
            vs = [self.v_self(x), self.v_cond(cond), self.v_raw(raw)]
        q = self._heads(self.q_proj(x))
        ks = [self._heads(k) for k in ks]
        vs = [self._heads(v) for v in vs]
        if self.variant == "pro":
            cos, sin = released_rope_tables(
                x.shape[1], self.head_dim, x.device, q.dtype, table=self.rope_table
            )
            q = released_rope(q, cos, sin)
            rotated = []
            for k in ks:
                cos, sin = released_rope_tables(
                    k.shape[2], self.head_dim, x.device, k.dtype, table=self.rope_table
                )
                rotated.append(released_rope(k, cos, sin))
            ks = rotated
        ratio = torch.tanh(self.gate)
        # eq. (1): self, ActionQuery+proprio and tanh(g)-scaled Raw logits share one softmax (released code)
        scores = torch.cat(
            [q @ ks[0].transpose(-2, -1), q @ ks[1].transpose(-2, -1), (q @ ks[2].transpose(-2, -1)) * ratio],
            dim=-1,
        ) / math.sqrt(self.head_dim)  # (B, H, T, T + N_c + N_raw)
        weights = torch.softmax(scores, dim=-1)  # one joint softmax (released code)
        out = weights @ torch.cat(vs, dim=2)  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.dim)
        return self.o_proj(out)


class BridgeAttentionBlock(nn.Module):
    """One policy layer: Bridge Attention, then the released "residual FFN" ``x = ReLU(W LN(attn + x))``
    (LayerNorm -> Linear -> ReLU on the residual sum; there is no second residual)."""

    def __init__(self, dim: int, num_heads: int = 8, variant: str = "pro", rope_table: str = "exact"):
        super().__init__()
        self.attn = BridgeAttention(dim, num_heads, variant, rope_table)
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: Tensor, cond: Tensor, raw: Tensor) -> Tensor:
        return self.ffn(self.attn(x, cond, raw) + x)


class BridgeAttentionPolicy(nn.Module):
    """The L1 "Policy with Bridge Attention": one block per VLM layer.

    The initial action latent is all zeros, laid out as the released code does ((B, T, A*D): one row per
    chunk step), then LayerNorm -> Linear -> ReLU; each block l reads the conditions of VLM layer l; the output
    is LayerNorm -> Linear to A per chunk step.

    Args:
        dim: width D (the VLM's hidden size).
        action_dim: A.
        chunk_size: T.
        num_layers: L, the number of VLM layers whose states condition the policy.
        num_heads: attention heads per block.
        variant: ``"original"`` or ``"pro"``.
        rope_table: ``"exact"`` or ``"released"`` (pro only).
    """

    def __init__(
        self,
        dim: int,
        action_dim: int,
        chunk_size: int,
        num_layers: int,
        num_heads: int = 8,
        variant: str = "pro",
        rope_table: str = "exact",
    ):
        super().__init__()
        self.dim, self.action_dim, self.chunk_size = dim, action_dim, chunk_size
        self.input_norm = nn.LayerNorm(action_dim * dim)
        self.input_proj = nn.Linear(action_dim * dim, dim)
        self.blocks = nn.ModuleList(
            BridgeAttentionBlock(dim, num_heads, variant, rope_table) for _ in range(num_layers)
        )
        self.output_norm = nn.LayerNorm(dim)
        self.output_proj = nn.Linear(dim, action_dim)

    def forward(self, cond: Tensor, raw: Tensor, latent_noise_std: float = 0.0) -> Tensor:
        """cond (B, L, N_c, D) per-layer ActionQuery latents with the proprio token appended; raw (B, L, N_raw, D)
        per-layer Raw latents -> (B, T, A) normalised actions.

        Args:
            latent_noise_std: std of the Gaussian noise the released code adds to the zero initial latent in
                training (a fresh N(0, 0.02) tensor every call); 0 at inference.
        """
        b = cond.shape[0]
        if cond.shape[1] != len(self.blocks) or raw.shape[1] != len(self.blocks):
            raise ValueError(
                f"expected conditions for {len(self.blocks)} layers, got {cond.shape[1]} and {raw.shape[1]}"
            )
        x = cond.new_zeros(b, self.chunk_size, self.action_dim * self.dim)
        if latent_noise_std > 0:
            x = (
                x
                + torch.randn(self.chunk_size, self.action_dim * self.dim, device=x.device, dtype=x.dtype)
                * latent_noise_std
            )
        x = torch.relu(self.input_proj(self.input_norm(x)))  # (B, T, D)
        for i, block in enumerate(self.blocks):
            x = block(x, cond[:, i], raw[:, i])
        return self.output_proj(self.output_norm(x))
