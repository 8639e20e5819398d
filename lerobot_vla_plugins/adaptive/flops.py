"""Analytic FLOP estimates (multiply-add = 2 FLOPs) for transformer decoder layers and ViTs.

Used to report the compute of an early-exit query next to its measured latency. Counts the matrix products
only (projections, MLP, attention scores and mixing); norms, softmax and activations are ignored.
"""

from __future__ import annotations


def attention_mlp_flops(
    hidden: int,
    intermediate: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    q_len: int,
    kv_len: int,
    gated_mlp: bool = True,
) -> int:
    """FLOPs of one pre-norm decoder (or ViT) layer for ``q_len`` queries over ``kv_len`` keys.

    Projections q, k, v, o and the MLP (3 matrices when gated, e.g. SwiGLU; 2 otherwise), plus QK^T and AV.
    """
    q = num_heads * head_dim
    kv = num_kv_heads * head_dim
    proj = hidden * q + 2 * hidden * kv + q * hidden
    mlp = (3 if gated_mlp else 2) * hidden * intermediate
    attn = 2 * q_len * kv_len * q  # scores + mixing
    return 2 * (q_len * (proj + mlp) + attn)


def linear_flops(in_dim: int, out_dim: int, tokens: int) -> int:
    return 2 * in_dim * out_dim * tokens
