"""The DiT-based Policy of VLA-Adapter (appendix B): AdaLN-Zero blocks around Bridge Attention, trained with
the DDPM noise-prediction objective (eq. (B-2)) and sampled with ``diffusers`` schedulers (DDPM or DDIM).

Per block (eq. (B-1)), with c the diffusion-timestep embedding:

    (shift1, scale1, gate1, shift2, scale2, gate2) = Linear(SiLU(c))        # zero-initialised ("Zero")
    x = x + gate1 * BridgeAttention(LN(x) * (1 + scale1) + shift1, cond_l, raw_l)
    x = x + gate2 * FFN(LN(x) * (1 + scale2) + shift2)

The conditions are those of the L1 policy (per-layer ActionQuery latents + proprio token, per-layer Raw
latents); the output is LayerNorm -> Linear to the predicted noise. The paper gives no sizes for this variant:
the FFN is Linear(D, D) -> GELU -> Linear(D, D), and the noise schedule defaults follow OpenVLA-OFT's diffusion
head, which VLA-Adapter's code base inherits (50 train steps, squared-cosine betas).

Real-time chunking (Black et al. 2025, "Real-Time Execution of Action Chunking Flow Policies"): ``sample`` takes
an RTC processor (LeRobot's ``RTCProcessor``) and the unexecuted rest of the previous chunk, and guides the
denoising towards it (inpainting of the frozen prefix). That guidance is written for flow matching: time s in
[0, 1] (1 = noise), y_s = (1 - s) x_0 + s eps, velocity v = eps - x_0, clean estimate x_0 = y_s - s v. A VP
diffusion state x_t = a_t x_0 + b_t eps (a_t = sqrt(alpha_bar_t), b_t = sqrt(1 - alpha_bar_t)) is that path
rescaled:

    y = x_t / (a_t + b_t),   s = b_t / (a_t + b_t),   v = eps_hat - x0_hat,   x0_hat = (x_t - b_t eps_hat) / a_t

so each step hands (y, s, y -> v) to the processor and turns the guided velocity v' back into the noise the
scheduler steps with, eps' = y + (1 - s) v' (then (x_t - b_t eps') / a_t = y - s v', the guided clean estimate).

Dimension names: B batch, T chunk, L layers, N tokens, D width, A action dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from .bridge_attention import BridgeAttention

SCHEDULERS = ("ddpm", "ddim")


class RTCGuide(Protocol):
    """What ``sample`` needs of LeRobot's ``lerobot.policies.rtc.modeling_rtc.RTCProcessor``."""

    def denoise_step(
        self,
        x_t: Tensor,
        prev_chunk_left_over: Tensor | None,
        inference_delay: int | None,
        time: float | Tensor,
        original_denoise_step_partial: Callable[[Tensor], Tensor],
        execution_horizon: int | None,
    ) -> Tensor: ...


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) of integer diffusion timesteps (DiT's)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class BridgeDiTBlock(nn.Module):
    """AdaLN-Zero block with Bridge Attention (eq. (B-1))."""

    def __init__(self, dim: int, num_heads: int = 8, variant: str = "pro", rope_table: str = "exact"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = BridgeAttention(dim, num_heads, variant, rope_table)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: Tensor, c: Tensor, cond: Tensor, raw: Tensor) -> Tensor:
        """x (B, T, D), c (B, D) timestep embedding, cond (B, N_c, D), raw (B, N_raw, D) -> (B, T, D)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).unsqueeze(1).chunk(6, dim=-1)
        x = x + gate1 * self.attn(self.norm1(x) * (1 + scale1) + shift1, cond, raw)
        return x + gate2 * self.ffn(self.norm2(x) * (1 + scale2) + shift2)


class BridgeDiTPolicy(nn.Module):
    """Noise-prediction network + DDPM/DDIM schedule. ``loss`` trains it (eq. (B-2)), ``sample`` denoises.

    Args:
        dim: width D; action_dim: A; chunk_size: T; num_layers: L (one block per VLM layer).
        scheduler: ``"ddim"`` or ``"ddpm"`` sampler (training is the same DDPM objective for both).
        num_train_timesteps: diffusion steps of the noise schedule.
        num_inference_steps: denoising steps at inference.
        beta_schedule: a ``diffusers`` beta schedule name.
        rope_table: RoPE tables of the Pro attention (``heads.bridge_attention``).
    """

    def __init__(
        self,
        dim: int,
        action_dim: int,
        chunk_size: int,
        num_layers: int,
        num_heads: int = 8,
        variant: str = "pro",
        scheduler: str = "ddim",
        num_train_timesteps: int = 50,
        num_inference_steps: int = 50,
        beta_schedule: str = "squaredcos_cap_v2",
        rope_table: str = "exact",
    ):
        super().__init__()
        from diffusers import DDIMScheduler, DDPMScheduler

        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        self.dim, self.action_dim, self.chunk_size = dim, action_dim, chunk_size
        self.num_inference_steps = num_inference_steps
        kwargs = {
            "num_train_timesteps": num_train_timesteps,
            "beta_schedule": beta_schedule,
            "clip_sample": False,
            "prediction_type": "epsilon",
        }
        self.noise_scheduler = DDPMScheduler(**kwargs) if scheduler == "ddpm" else DDIMScheduler(**kwargs)
        self.action_in = nn.Linear(action_dim, dim)
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(
            BridgeDiTBlock(dim, num_heads, variant, rope_table) for _ in range(num_layers)
        )
        self.output_norm = nn.LayerNorm(dim)
        self.output_proj = nn.Linear(dim, action_dim)

    def predict_noise(self, noisy: Tensor, t: Tensor, cond: Tensor, raw: Tensor) -> Tensor:
        """noisy (B, T, A), t (B,) long, cond (B, L, N_c, D), raw (B, L, N_raw, D) -> predicted noise (B, T, A)."""
        c = self.time_mlp(timestep_embedding(t, self.dim).to(noisy.dtype))
        x = self.action_in(noisy)
        for i, block in enumerate(self.blocks):
            x = block(x, c, cond[:, i], raw[:, i])
        return self.output_proj(self.output_norm(x))

    def loss(self, actions: Tensor, cond: Tensor, raw: Tensor) -> Tensor:
        """Eq. (B-2): per-element squared error between the injected noise and the prediction, (B, T, A)."""
        b = actions.shape[0]
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (b,), device=actions.device)
        # x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
        noisy = self.noise_scheduler.add_noise(actions, noise, t)
        return (self.predict_noise(noisy, t, cond, raw) - noise) ** 2

    @torch.no_grad()
    def sample(
        self,
        cond: Tensor,
        raw: Tensor,
        generator: torch.Generator | None = None,
        rtc: RTCGuide | None = None,
        prev_chunk_left_over: Tensor | None = None,
        inference_delay: int | None = None,
        execution_horizon: int | None = None,
    ) -> Tensor:
        """Denoise from Gaussian noise with the configured scheduler -> (B, T, A).

        Args:
            rtc: real-time chunking guide; with ``prev_chunk_left_over`` (B, T', A) or (T', A), the normalised
                actions of the previous chunk not yet executed, every step is guided towards them (module
                docstring): fully over the first ``inference_delay`` steps, fading out up to
                ``execution_horizon``.
        """
        b = cond.shape[0]
        x = torch.randn(
            b, self.chunk_size, self.action_dim, device=cond.device, dtype=cond.dtype, generator=generator
        )
        self.noise_scheduler.set_timesteps(self.num_inference_steps, device=cond.device)
        guided = rtc is not None and prev_chunk_left_over is not None
        if guided:
            prev_chunk_left_over = prev_chunk_left_over[..., : self.chunk_size, :].to(x.device, x.dtype)
        for t in self.noise_scheduler.timesteps:
            tb = t.expand(b).to(cond.device)
            if guided:
                eps = self._guided_noise(
                    x, t, tb, cond, raw, rtc, prev_chunk_left_over, inference_delay, execution_horizon
                )
            else:
                eps = self.predict_noise(x, tb, cond, raw)
            x = self.noise_scheduler.step(eps, t, x, generator=generator).prev_sample
        return x

    def _guided_noise(
        self,
        x: Tensor,
        t: Tensor,
        tb: Tensor,
        cond: Tensor,
        raw: Tensor,
        rtc: RTCGuide,
        prev: Tensor,
        inference_delay: int | None,
        execution_horizon: int | None,
    ) -> Tensor:
        """Predicted noise at x_t (B, T, A), guided by ``rtc`` towards the frozen prefix ``prev``."""
        alpha_bar = self.noise_scheduler.alphas_cumprod[int(t)].to(x.device, torch.float64)
        a, b = alpha_bar.sqrt().item(), (1 - alpha_bar).sqrt().item()
        scale, s = a + b, b / (a + b)  # y = x_t / (a + b) = (1 - s) x_0 + s eps

        def velocity(y: Tensor) -> Tensor:  # v = eps_hat - x0_hat on the flow path
            x_t = y * scale
            eps = self.predict_noise(x_t, tb, cond, raw)
            return eps - (x_t - b * eps) / a

        v = rtc.denoise_step(
            x_t=x / scale,
            prev_chunk_left_over=prev,
            inference_delay=inference_delay or 0,
            time=s,
            original_denoise_step_partial=velocity,
            execution_horizon=execution_horizon,
        )
        return x / scale + (1 - s) * v  # eps' = y + (1 - s) v'
