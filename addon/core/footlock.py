"""Planted feet as keys (numpy only): where the result marks foot contact, a two-bone IK on each leg
(hip -> knee -> ankle) keeps the foot where it stands; the import then keys the changed rotations.

Contacts (``foot_contacts``, docs/result_format.md) name the ankle and the ball of each foot
(``left_ankle``, ``left_foot``, ...). Each run of contact frames of a point gets one target: the point's
mean position over the run. Per frame the ankle goal is

- ankle in contact: the ankle's target (and with the ball also in contact, the foot turns so that the
  ball points at the ball's target);
- only the ball in contact (heel up): the ball's target minus the foot, the foot's world rotation kept
  (right after a both-down phase, the turn onto the ball's target fades out over ``BLEND_FRAMES``, so the
  ankle does not jump at heel-off);
- neither: the displacement of the nearest locked frame, fading out over ``BLEND_FRAMES`` frames
  (no pop at lift-off or touch-down).

``strength`` s in [0, 1] moves the ankle by s times that displacement (0: the motion is returned
unchanged, the same object). The IK keeps the hip where it is (the root and pelvis are never moved),
the bone lengths, and the leg's bending plane (the plane through hip, knee and goal that holds the
current knee). World rotations: ``R_world[j] = R_world[parent] · R_local[j]``, positions
``p[j] = p[parent] + R_world[parent] · rest_offset[j]`` (docs/result_format.md); the thigh is rotated by the
smallest rotation carrying the old knee onto the new one, the shin likewise for the ankle, the ankle's
world rotation is kept (or turned onto the ball target), and the local rotations follow.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import rig
from .result import MotionResult
from .retarget import matrix_to_quat, world_rotations

FloatArray = np.ndarray
BLEND_FRAMES = 4
SIDES = ("left", "right")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _run_targets(points: FloatArray, mask: np.ndarray) -> FloatArray:
    """(T, 3) the mean position of the run each contact frame belongs to (NaN outside contact)."""
    out = np.full_like(points, np.nan)
    for s, e in _runs(mask):
        out[s:e] = points[s:e].mean(axis=0)
    return out


def _minimal_rotations(a: FloatArray, b: FloatArray) -> FloatArray:
    """(T, 3, 3) smallest rotations taking directions a to b ((T, 3), any length; near-opposite: identity
    is never needed here, the IK changes directions by far less than 180 degrees)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.einsum("ti,ti->t", a, b)
    vx = np.zeros((len(a), 3, 3))
    vx[:, 0, 1], vx[:, 0, 2], vx[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    vx[:, 1, 0], vx[:, 2, 0], vx[:, 2, 1] = v[:, 2], -v[:, 1], v[:, 0]
    k = 1.0 / np.maximum(1.0 + c, 1e-9)
    return np.eye(3)[None] + vx + (vx @ vx) * k[:, None, None]


def _rotation_power(R: FloatArray, w: float) -> FloatArray:
    """The rotation R (3, 3) scaled to w times its angle about the same axis."""
    q = matrix_to_quat(R)                                                          # w >= 0: angle <= pi
    angle = 2.0 * np.arccos(np.clip(q[0], -1.0, 1.0))
    n = float(np.linalg.norm(q[1:]))
    if n < 1e-12:
        return np.eye(3)
    x, y, z = q[1:] / n
    K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(w * angle) * K + (1 - np.cos(w * angle)) * (K @ K)


def _fk(Rw: FloatArray, root: FloatArray, rest: FloatArray, parents) -> FloatArray:
    P = np.empty((Rw.shape[0], len(parents), 3))
    for j, p in enumerate(parents):
        P[:, j] = root if p < 0 else P[:, p] + np.einsum("tab,b->ta", Rw[:, p], rest[j])
    return P


def _fade(goal: FloatArray, pos: FloatArray, locked: np.ndarray, frames: int) -> FloatArray:
    """(T, 3) displacement: goal - pos on locked frames, the nearest locked frame's fading out around them."""
    T = len(pos)
    d = np.zeros_like(pos)
    d[locked] = goal[locked] - pos[locked]
    idx = np.flatnonzero(locked)
    if len(idx) == 0:
        return d
    for t in np.flatnonzero(~locked):
        k = idx[np.argmin(np.abs(idx - t))]
        dist = abs(int(k) - int(t))
        if dist <= frames:
            d[t] = d[k] * (1.0 - dist / (frames + 1.0))
    assert d.shape == (T, 3)
    return d


def lock_feet(result: MotionResult, strength: float, *, blend_frames: int = BLEND_FRAMES) -> MotionResult:
    """``result`` with the legs' rotations changed so that contact-frame feet stay put (module docstring).
    Returns ``result`` itself when there is nothing to do (strength 0, no contacts, no vm24 legs)."""
    s = float(np.clip(strength, 0.0, 1.0))
    if s == 0.0 or result.foot_contacts is None or not result.foot_contacts.any():
        return result
    names = {n: i for i, n in enumerate(result.joint_names)}
    contact = {n: result.foot_contacts[:, c] > 0.5 for c, n in enumerate(result.contact_names)}
    parents = result.parents
    rest = result.rest_offsets
    Rw = world_rotations(result.rotations, parents)                               # (T, J, 3, 3)
    P = _fk(Rw, result.root_translation, rest, parents)                           # (T, J, 3)
    changed: list[int] = []
    for side in SIDES:
        chain = [f"{side}_{n}" for n in ("hip", "knee", "ankle", "foot")]
        if not all(n in names for n in chain) or not any(n in contact for n in chain[2:]):
            continue
        h, k, a, f = (names[n] for n in chain)
        if not (parents[k] == h and parents[a] == k and parents[f] == a):
            continue
        T = len(P)
        ca = contact.get(chain[2], np.zeros(T, bool))
        cf = contact.get(chain[3], np.zeros(T, bool))
        if not (ca.any() or cf.any()):
            continue
        ta, tf = _run_targets(P[:, a], ca), _run_targets(P[:, f], cf)
        foot_off = np.einsum("tab,b->ta", Rw[:, a], rest[f])                     # (T, 3) ankle -> ball
        # the foot's turn: with both points down, onto the ball's target (by the strength); heel up
        # after that, the same turn fading out, so that the ankle does not jump at heel-off
        turn = np.tile(np.eye(3), (T, 1, 1))
        both = ca & cf
        if both.any():
            want = tf[both] - ta[both]
            want *= (np.linalg.norm(foot_off[both], axis=1) / np.linalg.norm(want, axis=1))[:, None]
            turn[both] = _minimal_rotations(foot_off[both], (1 - s) * foot_off[both] + s * want)
            for t0, t1 in _runs(cf):
                last = -1
                for t in range(t0, t1):
                    if both[t]:
                        last = t
                    elif last >= 0:
                        turn[t] = _rotation_power(turn[last], max(0.0, 1.0 - (t - last - 1) / (blend_frames + 1.0)))
        foot_new = np.einsum("tab,tb->ta", turn, foot_off)
        goal = np.where(ca[:, None], ta, np.where(cf[:, None], tf - foot_new, P[:, a]))
        disp = _fade(goal, P[:, a], ca | cf, blend_frames)
        A = P[:, a] + s * disp                                                    # ankle goal (T, 3)

        # two-bone IK in the plane of hip, current knee and goal
        H, K = P[:, h], P[:, k]
        L1, L2 = float(np.linalg.norm(rest[k])), float(np.linalg.norm(rest[a]))
        d = A - H
        dist = np.clip(np.linalg.norm(d, axis=1), abs(L1 - L2) + 1e-6, (L1 + L2) * (1 - 1e-6))
        u = d / np.linalg.norm(d, axis=1, keepdims=True)
        bend = (K - H) - np.einsum("ti,ti->t", K - H, u)[:, None] * u
        bend /= np.maximum(np.linalg.norm(bend, axis=1, keepdims=True), 1e-12)
        cos_a = np.clip((L1 ** 2 + dist ** 2 - L2 ** 2) / (2 * L1 * dist), -1.0, 1.0)
        K2 = H + L1 * (cos_a[:, None] * u + np.sqrt(1 - cos_a ** 2)[:, None] * bend)
        A2 = H + dist[:, None] * u
        D1 = _minimal_rotations(K - H, K2 - H)                                    # thigh
        Rh = D1 @ Rw[:, h]
        Rk0 = D1 @ Rw[:, k]
        D2 = _minimal_rotations(np.einsum("tab,b->ta", Rk0, rest[a]), A2 - K2)    # shin
        Rk = D2 @ Rk0
        Ra = turn @ Rw[:, a]
        # world -> local for the three changed joints; everything below follows through FK
        for j, R_new in ((h, Rh), (k, Rk), (a, Ra)):
            Rw[:, j] = R_new
        changed += [h, k, a]
    if not changed:
        return result
    q = result.rotations.copy()
    for j in changed:   # R_local = R_world[parent]^T · R_world (the hips' parent, the pelvis, is unchanged)
        local = np.einsum("tba,tbc->tac", Rw[:, parents[j]], Rw[:, j])
        q[:, j] = rig.make_continuous(matrix_to_quat(local)[:, None])[:, 0]
    return dataclasses.replace(result, rotations=q, joints_world=_fk(Rw, result.root_translation, rest, parents))
