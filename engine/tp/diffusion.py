"""Diffusion schedule and the DDIM sampler, apart from any network.

The network predicts ``x0`` (the clean sample) from a noisy ``x_t`` and the step ``t``. DDIM with
``eta = 0`` is deterministic given the starting noise: at each of the chosen steps

    eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t),   x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps

and the last step returns ``x0``. Long sequences are split into overlapping windows; at every step
the windows' ``x0`` estimates are blended (linear ramps over the overlaps) into one full-length
estimate, so the state is one sequence and there is no seam to stitch afterwards. ``guide`` may
move that estimate toward evidence (inpainting in ``x0`` space) before the update.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

PredictX0 = Callable[[np.ndarray, int, list[int]], np.ndarray]
"""``predict(x_t, t, starts) -> x0``: ``x_t`` is (B, W, D), one window per start frame in ``starts``."""


def cosine_alphas_cumprod(num_steps: int = 1000, s: float = 0.008) -> np.ndarray:
    """(num_steps,) cumulative signal rate ``abar_t`` of the cosine schedule (Nichol & Dhariwal)."""
    t = np.arange(num_steps + 1) / num_steps
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    abar = f[1:] / f[0]
    return np.clip(abar, 1e-5, 1.0)


def q_sample(x0: np.ndarray, abar_t: np.ndarray | float, noise: np.ndarray) -> np.ndarray:
    """The forward process: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``."""
    a = np.asarray(abar_t)
    return np.sqrt(a) * x0 + np.sqrt(1.0 - a) * noise


def ddim_timesteps(num_steps: int, steps: int) -> np.ndarray:
    """``steps`` distinct diffusion steps from the noisiest (``num_steps - 1``) down to 0."""
    if not 1 <= steps <= num_steps:
        raise ValueError(f"DDIM steps must be in 1..{num_steps}, got {steps}")
    ts = np.linspace(num_steps - 1, 0, steps) if steps > 1 else np.array([num_steps - 1])
    return np.unique(ts.round().astype(int))[::-1]


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start frames of windows of ``window`` frames covering ``length`` frames with at least ``overlap``
    frames shared by neighbours; the last window ends at the last frame. One window when it fits."""
    if length <= window:
        return [0]
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in 0..{window - 1}, got {overlap}")
    stride = window - overlap
    starts = list(range(0, length - window, stride)) + [length - window]
    return sorted(set(starts))


def blend_weights(length: int, window: int, starts: list[int]) -> np.ndarray:
    """(len(starts), W) weights: linear ramps where windows overlap, 1 elsewhere (clip ends included)."""
    W = min(window, length)
    out = np.ones((len(starts), W))
    for i, s in enumerate(starts):
        if i > 0:                                    # ramp up over the overlap with the previous window
            ov = starts[i - 1] + W - s
            if ov > 0:
                out[i, :ov] = np.minimum(out[i, :ov], (np.arange(ov) + 1) / (ov + 1))
        if i + 1 < len(starts):                      # ramp down over the overlap with the next window
            ov = s + W - starts[i + 1]
            if ov > 0:
                out[i, W - ov:] = np.minimum(out[i, W - ov:], (ov - np.arange(ov)) / (ov + 1))
    return out


def ddim_sample(predict: PredictX0, length: int, dim: int, alphas_cumprod: np.ndarray, *, steps: int,
                window: int, overlap: int, seed: int = 0,
                guide: Callable[[np.ndarray, int], np.ndarray] | None = None,
                report: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Sample a (length, dim) sequence with DDIM (eta = 0).

    ``guide(x0, t) -> x0`` adjusts the blended estimate at every step; ``report(i, n)`` is called after
    each step (it may raise to cancel).
    """
    abar = np.asarray(alphas_cumprod, np.float64)
    ts = ddim_timesteps(len(abar), steps)
    starts = window_starts(length, window, overlap)
    W = min(window, length)
    wts = blend_weights(length, window, starts)
    x = np.random.default_rng(seed).standard_normal((length, dim))
    x0 = x
    for i, t in enumerate(ts):
        xw = np.stack([x[s:s + W] for s in starts])
        pred = np.asarray(predict(xw, int(t), starts), np.float64)
        num = np.zeros((length, dim))
        den = np.zeros((length, 1))
        for k, s in enumerate(starts):
            num[s:s + W] += wts[k, :, None] * pred[k]
            den[s:s + W] += wts[k, :, None]
        x0 = num / den
        if guide is not None:
            x0 = guide(x0, int(t))
        if i + 1 < len(ts):
            a_t, a_s = abar[t], abar[ts[i + 1]]
            eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1.0 - a_t)
            x = np.sqrt(a_s) * x0 + np.sqrt(1.0 - a_s) * eps
        if report is not None:
            report(i + 1, len(ts))
    return x0
