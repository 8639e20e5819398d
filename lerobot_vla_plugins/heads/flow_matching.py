"""Flow matching for action chunks: time sampling, interpolation, velocity target, Euler integration, warm start.

The papers of this collection write the same method with different conventions (which end of the time
axis holds the noise, which time distribution is sampled during training). ``FlowMatchingScheme`` holds one
convention; every policy picks a documented constant instead of re-deriving the loop.

Shapes: B batch, T chunk, A action dim.

Conventions
-----------
``A1_FLOW_MATCHING`` -- A1, as its released code trains and samples (``a1/vla/action_heads.py``
``sample_noisy_actions``; ``affordvla.py`` ``predict_actions``), which the A1 issue tells us to follow:

* t ~ Beta(1.5, 1), then t = 0.999 t + 0.001;
* x_t = t * noise + (1 - t) * action (noise at t = 1);
* velocity target u = noise - action;
* sampling: Euler from t = 1 (pure noise) to t = 0 in ``steps`` steps of dt = -1/steps.

The A1 paper (eq. 1-2) writes the mirror image (A^tau = tau A + (1 - tau) eps, integrate tau 0 -> 1, target
eps - A); the two only differ by t -> 1 - t and a sign of the target, so the released form is used to keep
the released checkpoints loadable.

Warm start (A1 eq. 10, Inter-Layer Truncated Flow Matching): ``sample`` accepts ``x_init``, the previous
estimate of the action chunk, and integrates from it instead of fresh noise. Time restarts at the noise
end for every warm-started sweep, as in A1's released ``predict_actions_flow_matching(input_x=...)``.

Real-time chunking (Black et al. 2025, "Real-Time Execution of Action Chunking Flow Policies"):
``rtc_guided_velocity`` wraps any velocity field with LeRobot's ``RTCProcessor.denoise_step`` (inpainting
guidance towards the not-yet-executed prefix of the previous chunk), for either time convention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from lerobot.policies.rtc.modeling_rtc import RTCProcessor

#: velocity_fn(x_t (B, T, A), t (B,)) -> predicted velocity (B, T, A)
VelocityFn = Callable[[Tensor, Tensor], Tensor]
#: wraps a velocity field into another one (e.g. real-time-chunking guidance)
VelocityGuide = Callable[[VelocityFn], VelocityFn]


@dataclass(frozen=True)
class FlowMatchingScheme:
    """One flow-matching convention.

    Attributes:
        time_alpha, time_beta: training times are drawn from Beta(time_alpha, time_beta) ...
        time_scale, time_offset: ... then mapped to ``time_scale * t + time_offset`` (keeps t away from 0).
        noise_at_one: True when x_1 is pure noise (x_t = t*noise + (1-t)*action, target noise - action,
            sampling integrates t from 1 to 0); False for the mirror convention (x_t = t*action + (1-t)*noise,
            target action - noise, sampling from 0 to 1).
    """

    time_alpha: float = 1.5
    time_beta: float = 1.0
    time_scale: float = 0.999
    time_offset: float = 0.001
    noise_at_one: bool = True

    def sample_time(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Training times (B,) in float32."""
        if generator is None:
            dist = torch.distributions.Beta(
                torch.tensor(self.time_alpha, device=device, dtype=torch.float32),
                torch.tensor(self.time_beta, device=device, dtype=torch.float32),
            )
            t = dist.sample((batch_size,))
        else:
            # Beta via two Gammas so that an explicit generator makes it reproducible.
            a = torch.full((batch_size,), self.time_alpha, dtype=torch.float32, device=generator.device)
            b = torch.full((batch_size,), self.time_beta, dtype=torch.float32, device=generator.device)
            ga = torch._standard_gamma(a, generator=generator)
            gb = torch._standard_gamma(b, generator=generator)
            t = (ga / (ga + gb)).to(device)
        return t * self.time_scale + self.time_offset

    def interpolate(self, action: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t (B, T, A) from the clean ``action`` and ``noise`` (both (B, T, A)) at times ``t`` (B,)."""
        tt = t.to(torch.float32).view(-1, *([1] * (action.dim() - 1)))
        a, n = action.to(torch.float32), noise.to(torch.float32)
        x = tt * n + (1 - tt) * a if self.noise_at_one else tt * a + (1 - tt) * n
        return x.to(action.dtype)

    def velocity_target(self, action: Tensor, noise: Tensor) -> Tensor:
        """The regression target u (B, T, A) of the velocity field (d x_t / d t)."""
        return noise - action if self.noise_at_one else action - noise

    def training_pair(
        self, action: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Draw noise and times for a batch of clean actions (B, T, A).

        Returns:
            ``(x_t, t, target)``: noisy actions (B, T, A), times (B,), velocity target (B, T, A).
        """
        noise = _randn(action.shape, generator, action.device, action.dtype)
        t = self.sample_time(action.shape[0], device=action.device, generator=generator)
        return self.interpolate(action, noise, t), t, self.velocity_target(action, noise)

    @property
    def start_time(self) -> float:
        """The time at which sampling starts (the noise end)."""
        return 1.0 if self.noise_at_one else 0.0

    def sample(
        self,
        velocity_fn: VelocityFn,
        steps: int,
        x_init: Tensor | None = None,
        shape: tuple[int, ...] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Integrate the learned field with forward Euler (A1 eq. 2: x <- x + dt * v(x, t)).

        Args:
            velocity_fn: ``v(x_t, t)`` with x_t (B, T, A) and t (B,).
            steps: number of Euler steps for one full sweep from the noise end to the data end.
            x_init: warm start (A1 eq. 10): the sweep starts from this (B, T, A) estimate instead of noise.
            shape: (B, T, A) of the noise to draw when ``x_init`` is None.

        Returns:
            The integrated action chunk (B, T, A).
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if x_init is None:
            if shape is None:
                raise ValueError("pass x_init (warm start) or the shape of the noise to start from")
            x = _randn(shape, generator, device, dtype)
        else:
            x = x_init.to(dtype)
        dt = (-1.0 if self.noise_at_one else 1.0) / steps
        t0 = self.start_time
        for i in range(steps):
            t = torch.full((x.shape[0],), t0 + i * dt, device=x.device, dtype=torch.float32)
            x = x + dt * velocity_fn(x, t).to(x.dtype)
        return x


def _randn(shape, generator, device, dtype) -> Tensor:
    """Standard normal noise; drawn on the generator's device when one is given, then moved to ``device``."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


#: A1 (released code convention, see the module docstring).
A1_FLOW_MATCHING = FlowMatchingScheme(
    time_alpha=1.5, time_beta=1.0, time_scale=0.999, time_offset=0.001, noise_at_one=True
)


def sinusoidal_time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sine/cosine embedding of flow times (B,) -> (B, dim), frequencies exp(-log(10000) * i / (dim/2 - 1)).

    The diffusion-policy embedding A1's released head uses (``SinusoidalPositionalEncoding``), fed the raw
    t in [0, 1].
    """
    if dim % 2:
        raise ValueError(f"time embedding dim must be even, got {dim}")
    half = dim // 2
    exponent = torch.arange(half, device=t.device, dtype=torch.float32) * (
        -torch.log(torch.tensor(10000.0)) / (half - 1)
    )
    emb = t.to(torch.float32)[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([emb.sin(), emb.cos()], dim=-1)


def rtc_guided_velocity(
    velocity_fn: VelocityFn,
    rtc_processor: RTCProcessor,
    prev_chunk_left_over: Tensor | None,
    inference_delay: int | None,
    execution_horizon: int | None = None,
    action_dims: int | None = None,
    scheme: FlowMatchingScheme = A1_FLOW_MATCHING,
) -> VelocityFn:
    """``velocity_fn`` guided by LeRobot's real-time chunking (``lerobot.policies.rtc.RTCProcessor``).

    ``RTCProcessor.denoise_step`` works in pi0's convention (noise at time 1, velocity noise - action, clean
    estimate x - time * v); a ``noise_at_one=False`` scheme is mapped onto it by time 1 - t and a velocity sign
    flip (as LeRobot's evo1 does). Only the first ``action_dims`` dims are guided (padding dims of a chunk padded
    to a fixed width keep their unguided velocity, so they are not pulled towards the zeros the previous chunk
    is padded with), and the previous chunk is cut to the chunk length (LeRobot pads it to the execution
    horizon, which may exceed it).

    Args:
        rtc_processor: a ``RTCProcessor`` (its config: prefix schedule, max guidance weight, execution horizon).
        prev_chunk_left_over: (B, T_prev, A_real) or (T_prev, A_real): the unexecuted actions of the previous
            chunk, in the policy's (normalised) action space; None: no guidance (first chunk).
        inference_delay: actions executed while this chunk is computed (their weight is 1).
        action_dims: real action dims (default: all).

    Returns:
        A velocity field ``v(x_t (B, T, A), t (B,)) -> (B, T, A)``; the guidance itself needs no gradient through
        the model (LeRobot's denoise_step differentiates the clean estimate w.r.t. x_t only).
    """
    sign = 1.0 if scheme.noise_at_one else -1.0

    def guided(x: Tensor, t: Tensor) -> Tensor:
        a = x.shape[-1] if action_dims is None else action_dims
        prev = prev_chunk_left_over
        if prev is not None:
            prev = prev.to(device=x.device, dtype=x.dtype)[..., : x.shape[-2], :a]
        time = float(t.reshape(-1)[0])
        full: dict[str, Tensor] = {}

        def base(x_real: Tensor) -> Tensor:
            xx = torch.cat([x_real, x[..., a:]], dim=-1) if a < x.shape[-1] else x_real
            with torch.no_grad():
                full["v"] = velocity_fn(xx, t)
            return sign * full["v"][..., :a]

        v_real = rtc_processor.denoise_step(
            x_t=x[..., :a],
            prev_chunk_left_over=prev,
            inference_delay=inference_delay,
            time=time if scheme.noise_at_one else 1.0 - time,
            original_denoise_step_partial=base,
            execution_horizon=execution_horizon,
        )
        v = full["v"].clone()
        v[..., :a] = sign * v_real.to(v.dtype)
        return v

    return guided
