"""What TP reads and writes, defined once for training (scripts/train_tp.py) and the engine.

World: Z up, metres (engine/geometry/frames.py). The *heading* of a frame is the yaw of the body's
facing direction, measured from the hips and shoulders (``across`` = left minus right points; the
body faces ``across x Z``; in the rest pose it faces -Y). The *heading frame* is the world turned by
that yaw so the body faces -Y.

- condition ``c`` (T, 3 * J): joint positions relative to the root, in the heading frame;
- target ``x`` (T, 7): planar root velocity in the heading frame (m/s, 2), root height above the floor
  (m, 1), foot contacts of ``skeleton.CONTACT_JOINTS`` as -1 / +1 (4).

The planar path is recovered by integrating the velocity turned back by the heading
(:func:`integrate`). Velocities are forward differences ``(p[t+1] - p[t]) * fps``, the last frame's
repeated.
"""

from __future__ import annotations

import numpy as np

from .. import skeleton as sk

FPS = 30.0                     # the rate TP is trained and run at (other rates are resampled)
X_DIM = 7
VEL, HEIGHT, CONTACT = slice(0, 2), slice(2, 3), slice(3, 7)
_L = [sk.INDEX[n] for n in ("left_hip", "left_shoulder")]
_R = [sk.INDEX[n] for n in ("right_hip", "right_shoulder")]
HEADING_SMOOTHING = 0.25       # s, Savitzky-Golay window over the unwrapped heading


def heading(joints: np.ndarray, fps: float = FPS, smoothing: float = HEADING_SMOOTHING) -> np.ndarray:
    """(T, J, 3) world joints (any origin) -> (T,) heading yaw in radians, unwrapped and lightly smoothed;
    0 means facing -Y (the rest pose)."""
    return heading_of(joints[:, _L], joints[:, _R], fps, smoothing)


def heading_of(left: np.ndarray, right: np.ndarray, fps: float = FPS,
               smoothing: float = HEADING_SMOOTHING) -> np.ndarray:
    """The heading of :func:`heading` from matching left and right body points (T, K, 3) each (hips and
    shoulders: vm24 joints or BlazePose landmarks in a Z-up frame)."""
    from ..trajectory import smooth

    across = (left - right).sum(1)                                  # (T, 3) body left
    facing = np.stack([across[:, 1], -across[:, 0]], -1)            # across x Z, planar (x, y)
    yaw = np.unwrap(np.arctan2(facing[:, 1], facing[:, 0]) + np.pi / 2)
    if smoothing > 0 and len(yaw) > 3:
        yaw = smooth(yaw[:, None], fps, smoothing)[:, 0]
    return yaw


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    """(T,) -> (T, 3, 3) rotations about Z (the heading frame -> world)."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.zeros((len(yaw), 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    return R


def condition(joints: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(T, J, 3) world joints, (T,) heading -> (T, 3J) root-relative joints in the heading frame."""
    rel = joints - joints[:, :1]
    local = np.einsum("tba,tjb->tja", yaw_matrices(yaw), rel)      # R^T rel
    return local.reshape(len(joints), -1).astype(np.float32)


def planar_velocity(root: np.ndarray, yaw: np.ndarray, fps: float) -> np.ndarray:
    """(T, 3) world root, (T,) heading -> (T, 2) forward-difference planar velocity in the heading frame (m/s)."""
    d = np.zeros((len(root), 3))
    if len(root) > 1:
        d[:-1, :2] = np.diff(root[:, :2], axis=0) * fps
        d[-1] = d[-2]
    return np.einsum("tba,tb->ta", yaw_matrices(yaw), d)[:, :2]


def target(root: np.ndarray, yaw: np.ndarray, contacts: np.ndarray, fps: float) -> np.ndarray:
    """(T, 3) world root (floor at z = 0), (T,) heading, (T, 4) bool contacts -> (T, 7) target."""
    x = np.zeros((len(root), X_DIM), np.float32)
    x[:, VEL] = planar_velocity(root, yaw, fps)
    x[:, HEIGHT] = root[:, 2:3]
    x[:, CONTACT] = np.where(contacts, 1.0, -1.0)
    return x


def integrate(x: np.ndarray, yaw: np.ndarray, fps: float, start: np.ndarray) -> np.ndarray:
    """(T, 7) target, (T,) heading -> (T, 3) world root path starting at ``start`` (x, y; z from x)."""
    v = np.zeros((len(x), 3))
    v[:, :2] = x[:, VEL]
    step = np.einsum("tab,tb->ta", yaw_matrices(yaw), v) / fps
    out = np.zeros((len(x), 3))
    out[0, :2] = start[:2]
    out[1:, :2] = start[:2] + np.cumsum(step[:-1, :2], axis=0)
    out[:, 2] = x[:, HEIGHT.start]
    return out


def resample(a: np.ndarray, fps_in: float, fps_out: float, n_out: int | None = None) -> np.ndarray:
    """Linear resampling of (T, ...) frames from one rate to another (same start time)."""
    T = len(a)
    if T == 0 or abs(fps_in - fps_out) < 1e-6 and (n_out is None or n_out == T):
        return a.copy()
    n = n_out if n_out is not None else max(1, int(round((T - 1) * fps_out / fps_in)) + 1)
    t_out = np.arange(n) / fps_out * fps_in
    flat = a.reshape(T, -1)
    res = np.stack([np.interp(t_out, np.arange(T), flat[:, k]) for k in range(flat.shape[1])], 1)
    return res.reshape((n,) + a.shape[1:]).astype(a.dtype, copy=False)
