"""Foot contact: the one definition shared by the engine's output, the training labels and the metrics.

A foot point (``skeleton.CONTACT_JOINTS``: ankles and balls of the feet) is in contact when it moves
slower than ``SPEED`` and is within ``HEIGHT`` of its flat-foot height above the floor (z = 0), the
"rate of change of foot height" of RopeTP plus a height test. Speeds are central differences, so a
label at frame t looks at t-1 and t+1 only.
"""

from __future__ import annotations

import numpy as np

from . import skeleton as sk

BALL_SOLE_HEIGHT = 0.03   # m, height of the ball-of-foot joint above the floor when the foot is flat
SPEED = 0.30              # m/s (= 1 cm/frame at 30 fps)
HEIGHT = 0.06             # m above the point's flat-foot height


def sole_heights(rest_offsets: np.ndarray) -> np.ndarray:
    """Flat-foot height above the floor of each CONTACT_JOINTS point (C,), from the skeleton's rest pose."""
    rest = sk.rest_positions(rest_offsets)
    out = []
    for n in sk.CONTACT_JOINTS:
        side = n.split("_")[0]
        ball = rest[sk.INDEX[f"{side}_foot"], 2]
        out.append(rest[sk.INDEX[n], 2] - ball + BALL_SOLE_HEIGHT)
    return np.array(out)


def label(points: np.ndarray, fps: float, flat_height: np.ndarray, *, speed: float = SPEED,
          height: float = HEIGHT) -> np.ndarray:
    """(T, C, 3) world foot points (Z up, floor at 0) -> (T, C) bool contacts."""
    points = np.asarray(points, np.float64)
    if len(points) < 2:
        return np.zeros(points.shape[:2], bool)
    v = np.gradient(points, axis=0) * fps                # (T, C, 3) m/s
    moving = np.linalg.norm(v, axis=-1)                  # (T, C)
    above = points[..., 2] - np.asarray(flat_height)[None]
    return (moving < speed) & (above < height)


def from_joints(joints: np.ndarray, fps: float, rest_offsets: np.ndarray) -> np.ndarray:
    """(T, J, 3) vm24 world joints -> (T, C) contacts of the CONTACT_JOINTS points."""
    idx = [sk.INDEX[n] for n in sk.CONTACT_JOINTS]
    return label(joints[:, idx], fps, sole_heights(rest_offsets))
