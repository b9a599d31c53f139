"""Foot locking: feet that are planted stay put (two-bone IK on the leg chain, blended in and out).

World frame (Z up, floor at 0), vm24 skeleton. Per side, frames where the foot is near the floor and
slow (engine.contacts.label with looser thresholds than the output labels: the estimate is noisier
than mocap) form stance segments; during a segment the ankle is held at one point (its median over the
segment, at its flat-foot height); hip and knee turn so the ankle reaches it (the knee stays in its own
bending plane), the foot holds one world orientation over the segment (the mean of its estimated
ones, so the ball of the foot stays put too; ``hold_orientation``); the correction fades
in and out over ``blend`` frames. Before that, the slide of the planted feet is taken out of the root's
horizontal path (``pin_root``): a body does not move while its standing foot stays put.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import contacts as ct
from . import skeleton as sk


@dataclass(frozen=True)
class FootLockConfig:
    speed: float = 1.2          # m/s, a foot slower than this (after smoothing) ...
    height: float = 0.12        # m, ... and this close to its flat-foot height may be planted
    min_frames: int = 3         # shorter stance segments are ignored
    blend: int = 3              # frames to fade the correction in and out
    strength: float = 1.0       # 0 = off, 1 = feet fully locked
    smoothing: float = 0.3      # s, filter of the foot path before deciding what is planted
    pin_root: float = 1.0       # 0..1: how much a planted foot's slide is taken out of the root's path
    use_predicted: bool = True  # stance from the trajectory stage's predicted contacts when it gives them
    hold_orientation: bool = True  # a planted foot keeps its segment's mean world orientation
    pin_smoothing: float = 0.3  # s, low-pass of the root correction from pin_root (0 = off)


def _segments(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, end) runs of True at least ``min_len`` long."""
    out, start = [], None
    for i, m in enumerate(np.r_[mask, False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            if i - start >= min_len:
                out.append((start, i))
            start = None
    return out


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3, 3) shortest-arc rotations turning directions a (T, 3) onto b (T, 3)."""
    import torch

    from .geometry import rotations as rot

    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return rot.shortest_arc(torch.as_tensor(a), torch.as_tensor(b)).numpy()


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(axis * angle[:, None]).as_matrix()


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (Q_hip, Q_knee), each (T, 3, 3), that move the chain hip-knee-ankle so that the
    ankle reaches ``target`` (clamped to the leg's reach): new upper-leg world rotation = Q_hip @ old,
    new lower-leg world rotation = Q_hip @ Q_knee @ old (Q_knee turns about the knee's hinge)."""
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    d = np.clip(np.linalg.norm(target - hip, axis=-1), np.abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4)
    u, v = knee - hip, ankle - knee
    axis = np.cross(u, v)
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    fallback = np.cross(u, np.array([0.0, 0.0, 1.0]) + 0 * u)          # a straight leg bends forward
    axis = np.where(n > 1e-6, axis / np.maximum(n, 1e-12), fallback / np.maximum(
        np.linalg.norm(fallback, axis=-1, keepdims=True), 1e-12))
    # knee: interior angle for the wanted hip-ankle distance (law of cosines), as a change of flexion
    cur = np.arccos(np.clip(np.sum(-u * v, -1) / (l1 * l2), -1, 1))
    want = np.arccos(np.clip((l1 ** 2 + l2 ** 2 - d ** 2) / (2 * l1 * l2), -1, 1))
    Q_knee = _axis_angle(axis, cur - want)
    ankle_new = knee + np.einsum("tab,tb->ta", Q_knee, v)
    Q_hip = _rotation_between(ankle_new - hip, target - hip)
    return Q_hip, Q_knee


def stance_weights(P: np.ndarray, rest: np.ndarray, fps: float, cfg: FootLockConfig,
                   predicted: np.ndarray | None = None) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """(T, 2) weights 0..1 of the left and right foot being planted (ramped in and out), and the stance
    segments [start, end) per side, from world joints P (T, J, 3), or from ``predicted`` (T, 4) contacts
    of skeleton.CONTACT_JOINTS (a foot is planted when its ankle or ball is in contact)."""
    flat = ct.sole_heights(rest)
    weights = np.zeros((len(P), 2))
    segments: list[list[tuple[int, int]]] = [[], []]
    for s, side in enumerate(("left", "right")):
        ci = sk.CONTACT_JOINTS.index(f"{side}_ankle")
        path = P[:, [sk.INDEX[f"{side}_ankle"]]]
        if cfg.smoothing > 0:                            # estimate noise would break stance into pieces
            from .trajectory import smooth

            path = smooth(path, fps, cfg.smoothing)
        planted = ct.label(path, fps, flat[[ci]], speed=cfg.speed, height=cfg.height)[:, 0]
        if predicted is not None:
            planted = predicted[:, ci] | predicted[:, sk.CONTACT_JOINTS.index(f"{side}_foot")]
        for a, b in _segments(planted, cfg.min_frames):
            segments[s].append((a, b))
            ramp = np.ones(b - a)
            k = min(cfg.blend, (b - a) // 2)
            if k > 0:
                ramp[:k] = ramp[-k:][::-1] = np.arange(1, k + 1) / (k + 1)
            weights[a:b, s] = np.maximum(weights[a:b, s], ramp)
    return weights, segments


def pinned_root(P: np.ndarray, root: np.ndarray, weights: np.ndarray, amount: float, fps: float = 30.0,
                smoothing: float = 0.0) -> np.ndarray:
    """The root's horizontal path with the planted feet's slide taken out: each frame the root moves as
    before minus the (stance-weighted) horizontal motion of the planted ankles. ``smoothing`` (s) low-passes
    the accumulated correction: it removes the slow drift without passing the legs' estimate noise
    (frame-to-frame wobble of the ankles) on to the whole body."""
    ankles = P[:, [sk.INDEX["left_ankle"], sk.INDEX["right_ankle"]], :2]      # (T, 2, 2)
    step = np.diff(ankles, axis=0)                                           # (T-1, 2, 2)
    w = np.minimum(weights[1:], weights[:-1])                                # (T-1, 2)
    total = w.sum(1, keepdims=True)
    slide = (w[..., None] * step).sum(1) / np.maximum(total, 1e-9)           # (T-1, 2)
    slide *= np.minimum(total, 1.0) * amount
    out = np.array(root, np.float64)
    correction = np.cumsum(slide, axis=0)
    if smoothing > 0 and len(correction) > 3:
        from .trajectory import smooth

        correction = smooth(correction, fps, smoothing)
    out[1:, :2] -= correction
    return out


def lock_feet(R_local: np.ndarray, root: np.ndarray, rest: np.ndarray, fps: float,
              cfg: FootLockConfig = FootLockConfig(), predicted: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local rotations (T, J, 3, 3) with the root's world orientation, world root (T, 3), rest offsets
    (J, 3) -> (new local rotations, new world root, stance mask (T, 2) for left and right). ``predicted``
    (T, 4) contacts, when given, decide the stance (see :func:`stance_weights`)."""
    from scipy.spatial.transform import Rotation   # lazy: listing the stages must not load scipy

    R_local = np.array(R_local, np.float64)
    root = np.array(root, np.float64)
    rest = np.asarray(rest, np.float64)
    Rw, P = sk.forward_kinematics(R_local, root, rest)
    flat = ct.sole_heights(rest)
    stance = np.zeros((len(P), 2), bool)
    if cfg.strength <= 0 or len(P) < cfg.min_frames:
        return R_local, root, stance
    weights, segments = stance_weights(P, rest, fps, cfg, predicted)
    if cfg.pin_root > 0:
        root = pinned_root(P, root, weights, cfg.pin_root, fps, cfg.pin_smoothing)
        Rw, P = sk.forward_kinematics(R_local, root, rest)
    I = sk.INDEX
    for s, side in enumerate(("left", "right")):
        hip, knee, ankle = I[f"{side}_hip"], I[f"{side}_knee"], I[f"{side}_ankle"]
        ci = sk.CONTACT_JOINTS.index(f"{side}_ankle")
        target = P[:, ankle].copy()
        foot_R = Rw[:, ankle].copy()                     # the foot's world orientation to reach
        for a, b in segments[s]:
            stance[a:b, s] = True
            target[a:b, :2] = np.median(P[a:b, ankle, :2], axis=0)
            target[a:b, 2] = flat[ci]
            if cfg.hold_orientation:
                foot_R[a:b] = Rotation.from_matrix(Rw[a:b, ankle]).mean().as_matrix()
        weight = weights[:, s] * cfg.strength
        on = weight > 0
        if not on.any():
            continue
        goal = P[on, ankle] + weight[on, None] * (target[on] - P[on, ankle])
        Q_hip, Q_knee = two_bone_ik(P[on, hip], P[on, knee], P[on, ankle], goal)
        parent = sk.PARENTS[hip]
        Rw_hip = Q_hip @ Rw[on, hip]
        Rw_knee = Q_hip @ Q_knee @ Rw[on, knee]
        R_local[on, hip] = np.swapaxes(Rw[on, parent], -1, -2) @ Rw_hip
        R_local[on, knee] = np.swapaxes(Rw_hip, -1, -2) @ Rw_knee
        # the foot turns toward its held orientation as far as the weight says (slerp from the estimate)
        turn = Rotation.from_matrix(foot_R[on] @ np.swapaxes(Rw[on, ankle], -1, -2)).as_rotvec()
        Rw_foot = Rotation.from_rotvec(turn * weight[on, None]).as_matrix() @ Rw[on, ankle]
        R_local[on, ankle] = np.swapaxes(Rw_knee, -1, -2) @ Rw_foot
    return R_local, root, stance
