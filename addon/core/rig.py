"""Armature layout and the conversion of result rotations to Blender pose-bone channels (numpy only).

The result (docs/result_format.md) gives per joint a local rotation ``q`` (wxyz) expressed in
WORLD-ALIGNED axes: every joint's rest frame is the identity, so

    R_world[j] = R_world[parent] · R_local[j]
    p[j]       = p[parent] + R_world[parent] · rest_offset[j]

Blender builds one bone per joint (head at the joint, tail at a child joint). A bone's rest matrix in
armature space is ``B_j`` (rotation part of ``bone.matrix_local``; its Y axis runs head -> tail, roll
chosen by us), and Blender poses it as

    Final_j = Final_parent · (B_parent⁻¹ · B_j) · Basis_j          (Final = EditBone * PoseBone)

where rotations stand for the 4x4 matrices with the heads as translations. We want the posed bone to
be the rest bone carried by the world rotation of the joint: ``Final_j = R_world[j] · B_j``. Solving
for the basis, the parent terms cancel and

    Basis_j = B_j⁻¹ · R_local[j] · B_j          i.e.  q_basis = b⁻¹ · q · b   (b = quaternion of B_j)

Heads follow: head_j = head_parent + R_world[parent] · (rest_head_j − rest_head_parent), the same
FK as the file provided the bone heads sit at the rest joint positions. The root bone also carries
the root motion: ``B_root · loc + rest_head_root = root_translation`` so
``loc = b_root⁻¹ · (root_translation − rest_head_root)`` (armature space = world when the armature
object sits at the origin unrotated, which is how the add-on creates it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Bone Z axis hints for the roll: vertical bones (spine, legs) point their Z axis to the character's
# front (-Y); horizontal bones (arms, collars, feet) point it up (+Z).
_FRONT = np.array([0.0, -1.0, 0.0])
_UP = np.array([0.0, 0.0, 1.0])
MIN_BONE_LENGTH = 0.03


@dataclass(frozen=True)
class BoneLayout:
    """Rest geometry of the armature built for a result skeleton (armature space, metres)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: FloatArray    # (J, 3)
    tails: FloatArray    # (J, 3)
    z_axes: FloatArray   # (J, 3) direction the bone's Z axis is rolled towards


def rest_positions(rest_offsets: FloatArray, parents: Sequence[int]) -> FloatArray:
    """Rest joint positions (J, 3) from offsets relative to the parent."""
    pos = np.zeros_like(rest_offsets, dtype=np.float64)
    for j, p in enumerate(parents):
        pos[j] = rest_offsets[j] if p < 0 else pos[p] + rest_offsets[j]
    return pos


def bone_layout(names: Sequence[str], parents: Sequence[int], rest_offsets: FloatArray) -> BoneLayout:
    """One bone per joint: head at the joint, tail at its main child; leaves extend their parent's line.

    The main child of a joint with several children is the most central one (smallest |x| offset:
    the spine over the hips, the neck over the collars).
    """
    heads = rest_positions(rest_offsets, parents)
    J = len(names)
    kids: list[list[int]] = [[] for _ in range(J)]
    for j, p in enumerate(parents):
        if p >= 0:
            kids[p].append(j)
    tails = np.zeros_like(heads)
    for j in range(J):
        cands = [c for c in kids[j] if np.linalg.norm(rest_offsets[c]) >= MIN_BONE_LENGTH]
        if cands:
            c = min(cands, key=lambda k: (abs(float(rest_offsets[k][0])), -float(np.linalg.norm(rest_offsets[k]))))
            tails[j] = heads[c]
            continue
        # Leaf: continue along the parent's direction (the joint's own offset), half as long.
        off = rest_offsets[j] if parents[j] >= 0 else _UP
        n = float(np.linalg.norm(off))
        direction = off / n if n > 1e-9 else _UP
        length = max(0.5 * n, MIN_BONE_LENGTH) if parents[j] >= 0 else 0.1
        tails[j] = heads[j] + direction * length
    z_axes = np.zeros_like(heads)
    for j in range(J):
        d = tails[j] - heads[j]
        d = d / np.linalg.norm(d)
        z_axes[j] = _FRONT if abs(d[2]) >= 0.7 else _UP
    return BoneLayout(tuple(names), tuple(int(p) for p in parents), heads, tails, z_axes)


# --- quaternions (wxyz, Blender's order) ---------------------------------------------------------
def quat_mul(a: FloatArray, b: FloatArray) -> FloatArray:
    """Hamilton product of wxyz quaternions, broadcasting over leading axes."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_conj(q: FloatArray) -> FloatArray:
    out: FloatArray = q * np.array([1.0, -1.0, -1.0, -1.0])
    return out


def quat_to_matrix(q: FloatArray) -> FloatArray:
    """(..., 4) wxyz -> (..., 3, 3) rotation matrices (normalises first)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_rotate(q: FloatArray, v: FloatArray) -> FloatArray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    out: FloatArray = np.einsum("...ab,...b->...a", quat_to_matrix(q), v)
    return out


def make_continuous(q: FloatArray) -> FloatArray:
    """Flip signs along axis 0 (time) so that q[t]·q[t-1] >= 0."""
    q = q.copy()
    for t in range(1, q.shape[0]):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1.0
    return q


def pose_basis(rotations: FloatArray, root_translation: FloatArray, rest_quats: FloatArray,
               root_head: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Result channels -> Blender pose-bone basis channels.

    rotations (T, J, 4) wxyz world-aligned local rotations; root_translation (T, 3);
    rest_quats (J, 4) wxyz of each bone's rest rotation in armature space (``B_j``);
    root_head (3,) rest head of the root bone. Returns (q_basis (T, J, 4), root_location (T, 3)).
    """
    b = rest_quats / np.linalg.norm(rest_quats, axis=-1, keepdims=True)          # (J, 4)
    q_basis = quat_mul(quat_mul(quat_conj(b)[None], rotations), b[None])           # (T, J, 4)
    q_basis /= np.linalg.norm(q_basis, axis=-1, keepdims=True)
    loc = quat_rotate(quat_conj(b[0])[None], root_translation - root_head[None])   # (T, 3)
    return make_continuous(q_basis), loc


def posed_heads(q_basis: FloatArray, root_location: FloatArray, rest_quats: FloatArray,
                rest_heads: FloatArray, parents: Sequence[int]) -> FloatArray:
    """Blender's pose evaluation (Final = EditBone * PoseBone) in numpy: bone heads (T, J, 3).

    Used by tests to check ``pose_basis`` without Blender.
    """
    B = quat_to_matrix(rest_quats)          # (J, 3, 3)
    Q = quat_to_matrix(q_basis)             # (T, J, 3, 3)
    T, J = q_basis.shape[:2]
    rot = np.zeros((T, J, 3, 3))
    pos = np.zeros((T, J, 3))
    for j, p in enumerate(parents):
        if p < 0:
            rot[:, j] = B[j] @ Q[:, j]
            pos[:, j] = rest_heads[j] + np.einsum("ab,tb->ta", B[j], root_location)
        else:
            rel = B[p].T @ B[j]                                  # B_parent⁻¹ · B_j
            rot[:, j] = rot[:, p] @ rel @ Q[:, j]
            off = B[p].T @ (rest_heads[j] - rest_heads[p])       # head in the parent's rest frame
            pos[:, j] = pos[:, p] + np.einsum("tab,b->ta", rot[:, p], off)
    return pos


def scene_fps(fps: float) -> tuple[int, float]:
    """Blender's (render.fps, render.fps_base) for a rate: fps / fps_base == rate."""
    n = max(1, int(round(fps)))
    return n, n / fps


def key_frames(times: FloatArray, fps: float, frame_start: float) -> FloatArray:
    """Scene frame of each result frame; snapped to integers when within 0.01 of one."""
    f = frame_start + (times - times[0]) * fps
    r = np.round(f)
    return np.where(np.abs(f - r) < 0.01, r, f)
