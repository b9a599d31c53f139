"""Posed anny bodies for the renderer (no bpy): vertices per frame, vm24 joints, foot contacts.

Two sources of motion:
- ``from_mocap``: a BVH clip retargeted by ``scripts.vmkit.mocap`` (the project's loader), posed on anny.
- ``procedural_walk``: a simple sinusoidal walk on anny's ``cmu_mb`` rig (fallback and tests).

Everything is returned in world coordinates: metres, Z up, floor at z = 0.
"""

from __future__ import annotations

import functools
from pathlib import Path
import math
from dataclasses import dataclass, field

import numpy as np

from engine.skeleton import ANNY_CMU_MB_BONE, CONTACT_JOINTS, INDEX, JOINT_NAMES

PHENOTYPE_NAMES: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")


@dataclass
class PosedBody:
    fps: float
    vertices: np.ndarray          # (T, V, 3) float32, world, metres
    faces: np.ndarray             # (F, 3) int32 triangles
    joints_world: np.ndarray      # (T, 24, 3) vm24 joints (anny cmu_mb bone heads)
    foot_contacts: np.ndarray     # (T, 4) bool, order engine.skeleton.CONTACT_JOINTS
    phenotype: dict[str, float]   # anny phenotype values in [0, 1]
    height_m: float               # standing height of the rest-pose body
    source: str                   # "procedural_walk" or the mocap clip's name
    vertex_part: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # (V,) 0 skin 1 top 2 bottom

    @property
    def n_frames(self) -> int:
        return int(self.vertices.shape[0])


@functools.lru_cache(maxsize=1)
def anny_model():
    """anny with the cmu_mb rig (shared with scripts.vmkit.mocap.anny_pose: one model in memory)."""
    from scripts.vmkit.mocap.anny_pose import get_anny_model

    return get_anny_model("cpu")


def _vm24_bone_indices(model) -> list[int]:
    labels = list(model.bone_labels)
    return [labels.index(ANNY_CMU_MB_BONE[n]) for n in JOINT_NAMES]


def sample_phenotype(rng: np.random.Generator) -> dict[str, float]:
    """Adult shapes with some spread (anny's 0.5 is the average adult)."""
    return {
        "gender": float(rng.uniform(0.0, 1.0)),
        "age": float(rng.uniform(0.4, 0.75)),
        "muscle": float(rng.uniform(0.2, 0.8)),
        "weight": float(rng.uniform(0.2, 0.8)),
        "height": float(rng.uniform(0.3, 0.75)),
        "proportions": float(rng.uniform(0.3, 0.7)),
    }


def vertex_parts(model) -> np.ndarray:
    """(V,) clothing region per vertex from its dominant bone: 0 skin, 1 top (torso, upper arms), 2 bottom."""
    labels = list(model.bone_labels)
    idx = model.vertex_bone_indices.cpu().numpy()
    w = model.vertex_bone_weights.cpu().numpy()
    dominant = idx[np.arange(idx.shape[0]), w.argmax(1)]
    top = {"LowerBack", "Spine", "Spine1", "LeftShoulder", "RightShoulder", "LeftArm", "RightArm", "Neck"}
    bottom = {"Hips", "LHipJoint", "RHipJoint", "LeftUpLeg", "RightUpLeg", "LeftLeg", "RightLeg"}
    part = np.zeros(idx.shape[0], np.int8)
    part[np.isin(dominant, [labels.index(b) for b in top])] = 1
    part[np.isin(dominant, [labels.index(b) for b in bottom])] = 2
    return part


def contacts_from_joints(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T, 4) foot contacts of a body without a vm24 rest skeleton (the procedural walk): the shared
    definition (``engine.contacts.label``) with each point's flat-foot height taken as its 5th-percentile
    height over the clip."""
    from engine import contacts

    p = joints[:, [INDEX[n] for n in CONTACT_JOINTS]]              # (T, 4, 3)
    return contacts.label(p, fps, np.percentile(p[..., 2], 5, axis=0))


def _rot(axis: str, ang: np.ndarray) -> np.ndarray:
    """(T, 4, 4) rotations about a world axis by angles (T,) in radians."""
    c, s = np.cos(ang), np.sin(ang)
    T = ang.shape[0]
    M = np.tile(np.eye(4), (T, 1, 1))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    M[:, i, i] = c
    M[:, j, j] = c
    M[:, i, j] = -s
    M[:, j, i] = s
    return M


def procedural_walk(n_frames: int, fps: float = 30.0, *, phenotype: dict[str, float] | None = None,
                    speed: float = 1.2, heading_deg: float = 0.0, start_xy=(0.0, 0.0),
                    cadence_hz: float = 0.9, phase: float = 0.0) -> PosedBody:
    """A sinusoidal walk on anny's cmu_mb rig (local-ref deltas: world-aligned axes at bone heads).

    In the rest pose the body faces -Y and its left is +X; a negative rotation about X swings a
    hanging limb forward. ``heading_deg`` turns the walking direction about Z (0 = toward -Y).
    """
    import torch

    model = anny_model()
    labels = list(model.bone_labels)
    t = np.arange(n_frames) / fps
    phi = 2 * math.pi * cadence_hz * t + phase                    # left-leg phase
    d = math.radians
    pose = np.tile(np.eye(4), (n_frames, len(labels), 1, 1))     # (T, B, 4, 4)

    def put(name: str, M: np.ndarray) -> None:
        b = labels.index(name)
        pose[:, b] = M @ pose[:, b]

    amp = min(1.0, speed / 1.2)
    for side, ph, sgn in (("Left", phi, 1.0), ("Right", phi + math.pi, -1.0)):
        hip = -d(24) * amp * np.sin(ph)                           # flexion forward when sin > 0
        knee = d(5) + d(55) * amp * np.clip(np.cos(ph), 0, None) ** 1.5
        put(f"{side}UpLeg", _rot("x", hip))
        put(f"{side}Leg", _rot("x", knee))
        put(f"{side}Foot", _rot("x", -0.35 * knee - 0.3 * hip))
        put(f"{side}Arm", _rot("x", d(18) * amp * np.sin(ph)) @ _rot("y", np.full(n_frames, sgn * d(30))))
        put(f"{side}ForeArm", _rot("x", -d(6) - d(6) * amp * (1 + np.sin(ph))))
    put("Hips", _rot("z", d(5) * amp * np.sin(phi)))
    put("Spine1", _rot("z", -d(7) * amp * np.sin(phi)))
    put("LowerBack", _rot("x", np.full(n_frames, -d(4))))
    body = _pose_anny(pose, phenotype)
    # Place in the world: heading, forward translation, feet on the floor.
    psi = math.radians(heading_deg)
    Rz = np.array([[math.cos(psi), -math.sin(psi), 0], [math.sin(psi), math.cos(psi), 0], [0, 0, 1]])
    fwd = Rz @ np.array([0.0, -1.0, 0.0])
    root = np.asarray(start_xy, float)[None, :2] + (speed * t)[:, None] * fwd[None, :2]   # (T, 2)
    verts, joints = body["vertices"] @ Rz.T, body["joints"] @ Rz.T
    lift = -verts[..., 2].min(axis=1)                                                    # (T,)
    shift = np.concatenate([root, lift[:, None]], axis=1)[:, None, :]                    # (T, 1, 3)
    verts = verts + shift
    joints = joints + shift
    return PosedBody(fps=fps, vertices=verts.astype(np.float32), faces=body["faces"], joints_world=joints,
                     foot_contacts=contacts_from_joints(joints, fps), phenotype=body["phenotype"],
                     height_m=body["height_m"], source="procedural_walk", vertex_part=vertex_parts(model))


def _pose_anny(pose: np.ndarray, phenotype: dict[str, float] | None) -> dict:
    """Skin anny with local-ref pose deltas (T, B, 4, 4). Returns pelvis-origin vertices and vm24 joints."""
    import torch

    model = anny_model()
    phen = {n: 0.5 for n in PHENOTYPE_NAMES}
    phen.update(phenotype or {})
    T = pose.shape[0]
    verts, heads = [], []
    with torch.no_grad():
        for s in range(0, T, 64):
            p = torch.as_tensor(pose[s:s + 64], dtype=model.dtype)
            kw = {k: torch.full((p.shape[0],), v, dtype=model.dtype) for k, v in phen.items()}
            out = model(pose_parameters=p, phenotype_kwargs=kw, return_bone_ends=True)
            verts.append(out["vertices"].cpu().numpy())
            heads.append(out["bone_heads"].cpu().numpy())
            rest = out["rest_vertices"][0].cpu().numpy()
    v = np.concatenate(verts)
    joints = np.concatenate(heads)[:, _vm24_bone_indices(model)]
    return {"vertices": v, "joints": joints, "faces": model.faces.cpu().numpy().astype(np.int32),
            "phenotype": phen, "height_m": float(rest[:, 2].max() - rest[:, 2].min())}


def mocap_available() -> bool:
    try:
        import scripts.vmkit.mocap.anny_pose  # noqa: F401
    except ImportError:
        return False
    return True


def _rigid_z(points: np.ndarray, yaw_rad: float, shift_xy: np.ndarray) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return points @ R.T + np.array([shift_xy[0], shift_xy[1], 0.0])


def from_motion(motion, *, phenotype: dict[str, float] | None = None, start: int = 0,
                n_frames: int | None = None, yaw_deg: float = 0.0, centre: bool = True) -> PosedBody:
    """Pose anny with a retargeted ``scripts.vmkit.mocap`` Motion (frames ``start:start+n_frames``).

    The clip is turned by ``yaw_deg`` about Z and (``centre``) moved so that its mean pelvis position
    is at the origin; the floor stays at z = 0.
    """
    from scripts.vmkit.mocap.anny_pose import pose_anny

    phen = {n: 0.5 for n in PHENOTYPE_NAMES}
    phen.update(phenotype or {})
    stop = motion.num_frames if n_frames is None else min(motion.num_frames, start + n_frames)
    frames = np.arange(start, stop)
    out = pose_anny(motion, phenotype=phen, frames=slice(start, stop))
    if isinstance(out, dict):
        verts, faces, joints = out["vertices"], out["faces"], out["joints_world"]
    elif isinstance(out, tuple):
        verts, faces, joints = out[:3]
    else:
        verts, faces, joints = out.vertices, out.faces, out.joints_world
    verts, joints = np.asarray(verts, np.float64), np.asarray(joints, np.float64)
    faces = np.asarray(faces, np.int32)
    yaw = math.radians(yaw_deg)
    shift = np.zeros(2)
    if centre:
        shift = -_rigid_z(joints[:, 0], yaw, np.zeros(2))[:, :2].mean(0)
    verts = _rigid_z(verts, yaw, shift)
    joints = _rigid_z(joints, yaw, shift)
    contacts = np.asarray(motion.foot_contacts[frames], bool)
    model = anny_model()
    rest = _pose_anny(np.tile(np.eye(4), (1, len(model.bone_labels), 1, 1)), phen)
    return PosedBody(fps=float(motion.fps), vertices=verts.astype(np.float32), faces=faces, joints_world=joints,
                     foot_contacts=contacts, phenotype=phen, height_m=rest["height_m"],
                     source=str(getattr(motion, "name", "mocap")), vertex_part=vertex_parts(model))


def from_mocap(path, *, phenotype: dict[str, float] | None = None, n_frames: int | None = None,
               fps: float = 30.0, start: int = 0, yaw_deg: float = 0.0) -> PosedBody:
    """Load a BVH / ASF-AMC clip with ``scripts.vmkit.mocap`` (retargeted to vm24) and pose anny with it."""
    from scripts.vmkit.mocap import dataset

    path = str(path)
    entries = [e for e in dataset.list_clips(dataset.DEFAULT_ROOT) if e.path == path]
    if entries:
        motion = dataset.load_motion(entries[0], fps=fps)
    else:  # a file outside the collection
        from scripts.vmkit.mocap.bvh import load_bvh
        from scripts.vmkit.mocap.retarget import detect_source_map, retarget
        clip = load_bvh(path)
        motion = retarget(clip, detect_source_map(clip), fps=fps, name=Path(path).stem)
    return from_motion(motion, phenotype=phenotype, start=start, n_frames=n_frames, yaw_deg=yaw_deg)


def turned(body: PosedBody, yaw_deg: float, about_xy=(0.0, 0.0)) -> PosedBody:
    """The body turned by ``yaw_deg`` about the vertical axis through ``about_xy``."""
    from dataclasses import replace

    a = np.array([about_xy[0], about_xy[1], 0.0])
    yaw = math.radians(yaw_deg)
    v = _rigid_z(body.vertices.astype(np.float64) - a, yaw, a[:2])
    j = _rigid_z(body.joints_world - a, yaw, a[:2])
    return replace(body, vertices=v.astype(np.float32), joints_world=j)


def walking_heading_deg(body: PosedBody) -> float:
    """Direction of the pelvis displacement over the clip, as a heading (0 = toward -Y, like the rest pose)."""
    d = body.joints_world[-1, 0, :2] - body.joints_world[0, 0, :2]
    return math.degrees(math.atan2(d[0], -d[1]))
