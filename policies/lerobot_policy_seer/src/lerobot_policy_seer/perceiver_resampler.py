"""Flamingo's perceiver resampler (Alayrac et al. 2022), as Seer uses it to compress the 196 MAE patch tokens of
each image into a few latents (released ``models/perceiver_resampler.py``: depth 3, 8 heads of 64, FF x4, no
time embeddings for single frames)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PerceiverAttention(nn.Module):
    """Latents attend to [media; latents] (keys and values from both), pre-normed, bias-free projections."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.scale = head_dim**-0.5
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: Tensor, latents: Tensor) -> Tensor:
        """media (N, P, D), latents (N, L, D) -> (N, L, D) attention output (residual not added)."""
        media, latents = self.norm_media(media), self.norm_latents(latents)
        n, length, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((media, latents), dim=1)).chunk(2, dim=-1)

        def heads(x: Tensor) -> Tensor:  # (N, T, H*Dh) -> (N, H, T, Dh)
            return x.view(n, x.shape[1], self.heads, -1).transpose(1, 2)

        attn = (heads(q) * self.scale) @ heads(k).transpose(-1, -2)
        out = attn.softmax(dim=-1) @ heads(v)  # (N, H, L, Dh)
        return self.to_out(out.transpose(1, 2).reshape(n, length, -1))


class PerceiverFeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mult, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * mult, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class PerceiverLayer(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.attn = PerceiverAttention(dim, heads, head_dim)
        self.ff = PerceiverFeedForward(dim)

    def forward(self, media: Tensor, latents: Tensor) -> Tensor:
        latents = self.attn(media, latents) + latents
        return self.ff(latents) + latents


class PerceiverResampler(nn.Module):
    """(N, P, D) media tokens -> (N, L, D) latents, L = ``num_latents`` learned queries."""

    def __init__(self, dim: int, num_latents: int, depth: int = 3, heads: int = 8, head_dim: int = 64):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim))
        self.layers = nn.ModuleList([PerceiverLayer(dim, heads, head_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, media: Tensor) -> Tensor:
        latents = self.latents.unsqueeze(0).expand(media.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(media, latents)
        return self.norm(latents)
