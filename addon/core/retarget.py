"""Retargeting a result onto another rig (numpy only; the bpy half is ``addon/blender/retarget_apply.py``).

Bone maps are data (``addon/core/bone_maps/*.json``, format ``video_mocap.bone_map`` v1): target bone
name -> result joint name, the target bone that carries the root motion, optional bones, accepted name
prefixes (``mixamorig:``) and what unmapped bones do (``rest``: keep their rest pose relative to the
parent; ``share``: the bones listed in ``shares`` take a share of their parent's pose rotation, or of
its twist about their own axis (twist bones), see ``share_rotation``; the others stay at rest).

The maths is a world-space rotation transfer with rest-pose alignment. Source joint ``j`` has a world
rotation ``R_j`` (FK of the result's world-aligned local rotations; identity in the T-pose rest). A
mapped target bone ``t`` (rest rotation ``B_t`` in armature space) gets a rest alignment ``A_t``: the
rotation that carries the target's rest segments (its head -> the heads of its mapped descendants) onto
the source's rest segments (joint ``j`` -> the matching joints), so an A-pose or a T-pose target both
start from the source rest. Posed, the bone's armature-space rotation is

    M_t = R_j · A_t · B_t

so its segments point where the source's do. Blender composes ``Final_t = Final_parent ·
(B_parent⁻¹ B_t) · Basis_t``; hence ``Basis_t = (B_parent⁻¹ B_t)⁻¹ · Final_parent⁻¹ · M_t``, walking the
target hierarchy parent-first. Unmapped bones keep ``Basis = I`` (not keyed). The root bone's head
follows the result's root translation scaled by the ratio of leg lengths (target / source).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from . import rig

FloatArray = npt.NDArray[np.float64]
BONE_MAP_FORMAT = "video_mocap.bone_map"
PRESET_DIR = Path(__file__).resolve().parent / "bone_maps"
# Preset order: ties in automatic detection go to the earlier one.
PRESET_ORDER = ("engine", "rigify", "mixamo", "makehuman", "unreal", "smplx", "smpl_legacy", "cmu_mb")
ROOT_MODES = ("bone", "object", "in_place")
UNMAPPED_MODES = ("rest", "share")
LEG = ("left_hip", "left_knee", "left_ankle")


class RetargetError(ValueError):
    """A bone map or a target rig that cannot be used; the message is ready for the user."""


@dataclass(frozen=True)
class BoneMap:
    name: str
    label: str
    root: str                              # target bone carrying the root motion
    bones: dict[str, str]                  # target bone -> source joint
    optional: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ("",)
    unmapped: str = "rest"
    constants: dict[str, dict[str, float]] = field(default_factory=dict)   # bone -> custom prop -> value
    shares: dict[str, tuple[float, bool]] = field(default_factory=dict)     # unmapped bone -> (share, twist only)
    path: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"format": BONE_MAP_FORMAT, "version": 1, "name": self.name, "label": self.label,
                "root": self.root, "bones": dict(self.bones), "optional": list(self.optional),
                "prefixes": list(self.prefixes), "unmapped": self.unmapped, "constants": self.constants,
                **({"shares": {b: {"share": v, "twist": t} for b, (v, t) in self.shares.items()}} if self.shares else {})}


def parse_map(data: Any, source: str = "bone map") -> BoneMap:
    """Check and convert a JSON object to a BoneMap (RetargetError with the reason if it is wrong)."""
    if not isinstance(data, dict) or data.get("format") != BONE_MAP_FORMAT:
        raise RetargetError(f"{source}: not a Video Mocap bone map (format {BONE_MAP_FORMAT!r} expected)")
    bones = data.get("bones")
    if not isinstance(bones, dict) or not bones or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in bones.items()):
        raise RetargetError(f"{source}: 'bones' must map target bone names to joint names")
    root = data.get("root", "")
    if not isinstance(root, str) or root not in bones:
        raise RetargetError(f"{source}: the root bone {root!r} must be one of the mapped bones")
    optional = tuple(str(b) for b in data.get("optional", []))
    unknown = [b for b in optional if b not in bones]
    if unknown:
        raise RetargetError(f"{source}: optional bones not in the map: {', '.join(unknown)}")
    unmapped = str(data.get("unmapped", "rest"))
    if unmapped not in UNMAPPED_MODES:
        raise RetargetError(f"{source}: unmapped={unmapped!r} is not supported (one of {', '.join(UNMAPPED_MODES)})")
    shares: dict[str, tuple[float, bool]] = {}
    try:
        for b, spec in data.get("shares", {}).items():
            shares[str(b)] = (float(spec["share"]), bool(spec.get("twist", False)))
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise RetargetError(f"{source}: 'shares' must map bones to {{\"share\": 0..1, \"twist\": true|false}}") from e
    bad = [b for b, (v, _) in shares.items() if b in bones or not 0.0 <= v <= 1.0]
    if bad:
        raise RetargetError(f"{source}: shares must be unmapped bones with a share in 0..1: {', '.join(bad)}")
    if shares and unmapped != "share":
        raise RetargetError(f"{source}: 'shares' needs \"unmapped\": \"share\"")
    prefixes = tuple(str(p) for p in data.get("prefixes", [""])) or ("",)
    name = str(data.get("name", "custom"))
    constants = data.get("constants", {})
    try:
        constants = {str(b): {str(k): float(v) for k, v in props.items()} for b, props in constants.items()}
    except (AttributeError, TypeError, ValueError) as e:
        raise RetargetError(f"{source}: 'constants' must map bones to {{property: number}}") from e
    return BoneMap(name=name, label=str(data.get("label", name)), root=root, bones=dict(bones),
                   optional=optional, prefixes=prefixes, unmapped=unmapped, constants=constants, shares=shares)


def load_map(path: str | os.PathLike[str]) -> BoneMap:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise RetargetError(f"Cannot read bone map {os.fspath(path)}: {e}") from e
    m = parse_map(data, os.fspath(path))
    return BoneMap(**{**m.__dict__, "path": os.fspath(path)})


def save_map(m: BoneMap, path: str | os.PathLike[str]) -> None:
    tmp = os.fspath(path) + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(m.to_json(), f, indent=1)
    os.replace(tmp, path)


def presets() -> dict[str, BoneMap]:
    return {n: load_map(PRESET_DIR / f"{n}.json") for n in PRESET_ORDER}


@dataclass(frozen=True)
class ResolvedMap:
    """A bone map applied to one rig: actual bone names (prefix included)."""

    map: BoneMap
    prefix: str
    bones: dict[str, str]       # actual target bone -> source joint (present bones only)
    root: str
    shares: dict[str, tuple[float, bool]] = field(default_factory=dict)   # actual bone names, present ones


def resolve(m: BoneMap, bone_names: Sequence[str], joint_names: Sequence[str]) -> ResolvedMap:
    """Match ``m`` against a rig's bones; RetargetError naming the missing bones if it does not fit."""
    have = set(bone_names)
    bad_src = sorted({j for j in m.bones.values() if j not in joint_names})
    if bad_src:
        raise RetargetError(f"Bone map '{m.label}' names joints the result does not have: {', '.join(bad_src)}")
    best: tuple[int, str, list[str]] | None = None
    for prefix in m.prefixes:
        missing = [b for b in m.bones if b not in m.optional and prefix + b not in have]
        found = sum(prefix + b in have for b in m.bones)
        if best is None or (len(missing), -found) < (len(best[2]), -sum(best[1] + b in have for b in m.bones)):
            best = (found, prefix, missing)
    assert best is not None
    _, prefix, missing = best
    if missing:
        raise RetargetError(f"The rig lacks bones of the '{m.label}' map: {', '.join(prefix + b for b in missing)}")
    bones = {prefix + b: j for b, j in m.bones.items() if prefix + b in have}
    missing_leg = [j for j in LEG if j in joint_names and j not in bones.values()]
    if missing_leg:
        raise RetargetError(f"Bone map '{m.label}' must map the left leg ({', '.join(missing_leg)} missing)")
    shares = {prefix + b: v for b, v in m.shares.items() if prefix + b in have}
    return ResolvedMap(map=m, prefix=prefix, bones=bones, root=prefix + m.root, shares=shares)


def detect(bone_names: Sequence[str], joint_names: Sequence[str],
           maps: dict[str, BoneMap] | None = None) -> ResolvedMap:
    """The preset that fits the rig (all its required bones present; most bones matched wins)."""
    maps = presets() if maps is None else maps
    fits: list[tuple[int, int, ResolvedMap]] = []
    near: list[tuple[int, str]] = []
    for order, m in enumerate(maps.values()):
        try:
            r = resolve(m, bone_names, joint_names)
        except RetargetError as e:
            have = set(bone_names)
            n = max(sum(p + b in have for b in m.bones) for p in m.prefixes)
            near.append((n, str(e)))
            continue
        fits.append((-len(r.bones), order, r))
    if fits:
        return min(fits, key=lambda f: (f[0], f[1]))[2]
    n, msg = max(near, key=lambda x: x[0])
    hint = (f" Closest preset: {msg[0].lower()}{msg[1:]}" if n > 0 else
            " No bone names match any preset (Rigify, Mixamo, anny/MakeHuman, Unreal, SMPL, engine).")
    raise RetargetError("No bone map preset fits this rig; choose a preset or a custom map." + hint)


# --- rotation helpers (matrices) ------------------------------------------------------------------
def _minimal_rotation(a: FloatArray, b: FloatArray) -> FloatArray:
    """Smallest rotation taking unit vector a to unit vector b (3x3)."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:   # opposite: half turn about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        out: FloatArray = 2.0 * np.outer(axis, axis) - np.eye(3)
        return out
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    out = np.eye(3) + vx + vx @ vx / (1.0 + c)
    return out


def align_rotation(target_dirs: FloatArray, source_dirs: FloatArray, primary: int | None = None) -> FloatArray:
    """Rotation R (3x3) with R · target_dirs[k] ≈ source_dirs[k] (unit vectors, (K, 3)).

    One direction: the smallest such rotation; several: least squares (Kabsch), falling back to the
    first direction when they are all parallel. With ``primary``: that direction exactly (the spine
    through a pelvis or a chest), the others only choose the turn about it (the hips' or collars' line),
    as the angle that best lines up their projections on the plane across it.
    """
    t = target_dirs / np.linalg.norm(target_dirs, axis=1, keepdims=True)
    s = source_dirs / np.linalg.norm(source_dirs, axis=1, keepdims=True)
    if primary is not None:
        R1 = _minimal_rotation(t[primary], s[primary])
        axis = s[primary]
        a = t @ R1.T
        a = a - np.outer(a @ axis, axis)                 # projections across the primary direction
        b = s - np.outer(s @ axis, axis)
        keep = [k for k in range(len(t)) if k != primary]
        sin = float(sum(np.dot(np.cross(a[k], b[k]), axis) for k in keep))
        cos = float(sum(np.dot(a[k], b[k]) for k in keep))
        if abs(sin) + abs(cos) < 1e-9:
            return R1
        theta = np.arctan2(sin, cos)
        K = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
        twist: FloatArray = np.eye(3) + np.sin(theta) * K + (1.0 - np.cos(theta)) * K @ K
        out0: FloatArray = twist @ R1
        return out0
    if len(t) >= 2:
        H = t.T @ s
        if np.linalg.matrix_rank(H, tol=1e-6) >= 2:
            U, _, Vt = np.linalg.svd(H)
            d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
            out: FloatArray = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
            return out
    return _minimal_rotation(t[0], s[0])


def matrix_to_quat(m: FloatArray) -> FloatArray:
    """(..., 3, 3) rotation matrices -> (..., 4) wxyz unit quaternions (w >= 0)."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = np.stack([
        np.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - tr, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - tr, m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 + 2 * m[..., 2, 2] - tr], -1),
    ], -2)                                                        # (..., 4 candidates, 4)
    diag = np.stack([1 + tr, 1 + 2 * m[..., 0, 0] - tr, 1 + 2 * m[..., 1, 1] - tr, 1 + 2 * m[..., 2, 2] - tr], -1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)
    return np.asarray(q, dtype=np.float64)


# --- the transfer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetRig:
    """A target armature's rest pose (armature space, metres as in the file)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]      # -1 for roots; need not be ordered
    rest_mats: FloatArray         # (B, 3, 3) rotation part of bone.matrix_local
    rest_heads: FloatArray        # (B, 3) bone.head_local


@dataclass(frozen=True)
class Retargeted:
    bones: tuple[str, ...]        # keyed bones (mapped ones), target order
    q_basis: FloatArray           # (T, K, 4) wxyz pose-bone rotation_quaternion
    root_bone: str
    root_offset: FloatArray       # (T, 3) root bone head displacement from rest, armature space
    root_location: FloatArray     # (T, 3) the same as the root bone's pose location channel
    scale: float
    heads: FloatArray             # (T, B, 3) every target bone head, posed (armature space)


def world_rotations(rotations: FloatArray, parents: Sequence[int]) -> FloatArray:
    """(T, J, 4) local world-aligned rotations -> (T, J, 3, 3) world rotations."""
    R = rig.quat_to_matrix(rotations)
    out = np.empty_like(R)
    for j, p in enumerate(parents):
        out[:, j] = R[:, j] if p < 0 else out[:, p] @ R[:, j]
    return out


def _topo_order(parents: Sequence[int]) -> list[int]:
    order: list[int] = []
    seen: set[int] = set()

    def visit(b: int) -> None:
        if b in seen:
            return
        if parents[b] >= 0:
            visit(parents[b])
        seen.add(b)
        order.append(b)

    for b in range(len(parents)):
        visit(b)
    return order


def share_rotation(parent_basis: FloatArray, rel: FloatArray, share: float, twist: bool) -> FloatArray:
    """An unmapped bone's pose (T, 3, 3) as ``share`` of its parent's pose rotation (``unmapped: share``).

    The parent's basis is brought into the bone's rest axes (``rel = B_parent⁻¹ B``), optionally reduced
    to its twist about the bone's Y axis (twist bones: half the upper arm's roll, none of its swing), and
    scaled along its own axis: ``Basis = exp(share · log(rel⁻¹ · Basis_parent · rel))``.
    """
    q = matrix_to_quat(rel.T[None] @ parent_basis @ rel[None])                    # (T, 4) wxyz, w >= 0
    if twist:
        q = q * np.array([1.0, 0.0, 1.0, 0.0])
        n = np.linalg.norm(q, axis=-1, keepdims=True)
        q = np.where(n > 1e-12, q / np.maximum(n, 1e-12), np.array([1.0, 0.0, 0.0, 0.0]))
    half = np.arccos(np.clip(q[:, 0], -1.0, 1.0))                                # half the angle
    sin = np.sin(half)
    axis = np.where(sin[:, None] > 1e-12, q[:, 1:] / np.maximum(sin, 1e-12)[:, None], 0.0)
    qs = np.concatenate([np.cos(share * half)[:, None], axis * np.sin(share * half)[:, None]], axis=-1)
    return rig.quat_to_matrix(qs)


def _below(parents: Sequence[int], b: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is a proper ancestor of ``b``."""
    p = parents[b]
    while p >= 0:
        if p == ancestor:
            return True
        p = parents[p]
    return False


def leg_length(points: dict[str, FloatArray]) -> float:
    return float(sum(np.linalg.norm(points[b] - points[a]) for a, b in zip(LEG[:-1], LEG[1:])))


def retarget(joint_names: Sequence[str], parents: Sequence[int], rest_offsets: FloatArray,
             rotations: FloatArray, root_translation: FloatArray, target: TargetRig,
             mapping: ResolvedMap, scale: float | None = None,
             world_rot: FloatArray | None = None) -> Retargeted:
    """Pose-bone channels for ``target`` that reproduce the result (see the module docstring).

    ``world_rot`` (3x3): the rotation part of the armature object's world matrix (armature axes in
    world coordinates); the result's world quantities are brought into armature space with it, so a
    rotated (Y-up FBX) armature works. ``scale``: result metres -> armature units (default: ratio of
    the left leg lengths).
    """
    jidx = {n: i for i, n in enumerate(joint_names)}
    bidx = {n: i for i, n in enumerate(target.names)}
    W = np.eye(3) if world_rot is None else np.asarray(world_rot, dtype=np.float64)
    src_rest = rig.rest_positions(rest_offsets, parents) @ W                        # armature axes
    Rw = W.T[None, None] @ world_rotations(rotations, parents) @ W[None, None]       # (T, J, 3, 3)
    root_translation = root_translation @ W
    T, B = rotations.shape[0], len(target.names)
    mapped = {bidx[b]: jidx[j] for b, j in mapping.bones.items()}
    shares = {bidx[b]: v for b, v in mapping.shares.items() if bidx[b] not in mapped}
    if scale is None:
        tgt = {joint_names[j]: target.rest_heads[b] for b, j in sorted(mapped.items(), reverse=True)}
        src_len = leg_length({n: src_rest[jidx[n]] for n in LEG})
        scale = leg_length(tgt) / src_len if src_len > 1e-6 else 1.0
    if not scale > 0:
        raise RetargetError(f"Bad scale {scale}: the rig's leg bones have no length")

    # Mapped descendants of each mapped bone (the nearest ones along each branch).
    kids: list[list[int]] = [[] for _ in range(B)]
    for b, p in enumerate(target.parents):
        if p >= 0:
            kids[p].append(b)

    def mapped_below(b: int) -> list[int]:
        out: list[int] = []
        for c in kids[b]:
            out.extend([c] if c in mapped else mapped_below(c))
        return out

    # The source joint's main child (the spine over the hips, the neck between the collars: smallest
    # sideways offset, as rig.bone_layout picks it): its segment is matched exactly, the others set the turn.
    src_kids: dict[int, list[int]] = {}
    for jj, pj in enumerate(parents):
        if pj >= 0:
            src_kids.setdefault(pj, []).append(jj)
    main_kid = {pj: min(ks, key=lambda k: (abs(float(rest_offsets[k][0])), -float(np.linalg.norm(rest_offsets[k]))))
                for pj, ks in src_kids.items() if len(ks) > 1}

    order = _topo_order(target.parents)
    align: dict[int, FloatArray] = {}
    for b in order:
        if b not in mapped:
            continue
        j = mapped[b]
        tdirs, sdirs, primary = [], [], None
        for c in mapped_below(b):
            tv = target.rest_heads[c] - target.rest_heads[b]
            sv = src_rest[mapped[c]] - src_rest[j]
            if np.linalg.norm(tv) > 1e-4 and np.linalg.norm(sv) > 1e-4:
                if mapped[c] == main_kid.get(j) and primary is None:
                    primary = len(tdirs)
                tdirs.append(tv)
                sdirs.append(sv)
        if tdirs:
            align[b] = align_rotation(np.array(tdirs), np.array(sdirs),
                                      primary if primary is not None and len(tdirs) > 1 else None)
        else:   # leaf or coincident joints: inherit the nearest mapped ancestor's alignment
            a = target.parents[b]
            while a >= 0 and a not in align:
                a = target.parents[a]
            align[b] = align[a] if a >= 0 else np.eye(3)

    Bm = target.rest_mats
    final = np.empty((T, B, 3, 3))
    heads = np.empty((T, B, 3))
    basis: dict[int, FloatArray] = {}
    root_b = bidx[mapping.root]
    root_j = mapped[root_b]
    root_offset = scale * (root_translation - src_rest[root_j][None])               # (T, 3)
    for b in order:
        p = target.parents[b]
        rel = Bm[b] if p < 0 else Bm[p].T @ Bm[b]
        Fp = np.broadcast_to(np.eye(3), (T, 3, 3)) if p < 0 else final[:, p]
        if b in mapped:
            M = Rw[:, mapped[b]] @ (align[b] @ Bm[b])[None]
            basis[b] = np.swapaxes(Fp @ rel[None], -1, -2) @ M
            final[:, b] = M
        elif b in shares and p in basis:
            basis[b] = share_rotation(basis[p], rel, *shares[b])
            final[:, b] = Fp @ rel[None] @ basis[b]
        else:
            final[:, b] = Fp @ rel[None]
        if p < 0:
            heads[:, b] = target.rest_heads[b]
        else:
            off = Bm[p].T @ (target.rest_heads[b] - target.rest_heads[p])
            heads[:, b] = heads[:, p] + np.einsum("tab,b->ta", final[:, p], off)
        if b == root_b:
            heads[:, b] = heads[:, b] + root_offset
    # The anchor: when another bone is mapped to the root joint below the root bone (Rigify: ``torso``
    # carries the motion, ``spine_fk`` the hips, hanging from it through the reversed lower spine), the
    # point rigid with that bone at the root bone's rest head is what must follow the root joint's
    # translation, not the root bone's head: shift the root by the difference (a pure translation of
    # everything below the root bone; no rotation changes).
    anchor = [b for b in order if mapped.get(b) == root_j and b != root_b and _below(target.parents, b, root_b)]
    if anchor:
        a = anchor[-1]
        a_rest = target.rest_heads[root_b]
        posed = heads[:, a] + np.einsum("tab,b->ta", final[:, a], Bm[a].T @ (a_rest - target.rest_heads[a]))
        shift = (a_rest + root_offset) - posed                                       # (T, 3)
        root_offset = root_offset + shift
        for b in order:
            if b == root_b or _below(target.parents, b, root_b):
                heads[:, b] = heads[:, b] + shift
    # The root bone's location channel (its ancestors are unposed): head = rest + B_root · loc.
    root_location = root_offset @ Bm[root_b]                                         # B_rootᵀ · offset
    keyed = [b for b in order if b in basis]
    q = matrix_to_quat(np.stack([basis[b] for b in keyed], axis=1))
    return Retargeted(bones=tuple(target.names[b] for b in keyed), q_basis=rig.make_continuous(q),
                      root_bone=mapping.root, root_offset=root_offset, root_location=root_location,
                      scale=float(scale), heads=heads)


def source_targets(joints_world: FloatArray, rest_offsets: FloatArray, parents: Sequence[int],
                   root: int, scale: float, target_root_rest: FloatArray) -> FloatArray:
    """The result's joints scaled to the rig: ``target_root_rest + scale · (p − rest_root)`` (T, J, 3)."""
    src_rest = rig.rest_positions(rest_offsets, parents)
    out: FloatArray = target_root_rest + scale * (joints_world - src_rest[root])
    return out
