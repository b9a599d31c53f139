"""Pose the anny body (rig ``cmu_mb``) with a vm24 :class:`~scripts.vmkit.mocap.retarget.Motion`.

    from scripts.vmkit.mocap.anny_pose import pose_anny, phenotype_for_motion
    fr = pose_anny(motion, phenotype=None, frames=slice(0, 100), device="cpu")
    fr.vertices      # (T, V, 3) float32, world frame: metres, Z up, the floor at z = 0
    fr.faces         # (F, 3) int64 triangles (same for every frame)
    fr.joints_world  # (T, 24, 3) vm24 joints = posed bone heads named by skeleton.ANNY_CMU_MB_BONE
    fr.bone_heads    # (T, 31, 3) every cmu_mb bone head, names in fr.bone_names

``phenotype``: anny phenotype values in [0, 1] by name (gender, age, muscle, weight, height,
proportions; missing ones are 0.5). ``phenotype_for_motion(motion)`` gives the height that matches
the performer. The model is built once per process (``get_anny_model``; the first build of the rig
writes ~/.cache/anny and takes ~75 s, later ones ~2 s).

How: anny is driven in its ``world-orient`` pose mode (each bone's world orientation; heads follow
their parents). Each anny bone follows the world rotation of a vm24 joint, after a rest correction ``C``
that takes anny's rest (A-pose) bone onto our T-pose bone: ``G_bone = R_world[vm24 joint] @ C`` and the
bone's world orientation is ``G_bone @ R_rest_bone``. The root (Hips head) follows the motion's pelvis,
scaled by the ratio of anny's leg length to the performer's (less foot skating); one constant vertical
shift per clip then puts anny's soles on the floor (same floor rule as the mocap, from all frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine import body_mesh
from engine import skeleton as sk
from .retarget import Motion

# The bone table, the rest corrections and the model are the engine's (engine/body_mesh.py builds the
# result's body mesh with them): one definition of how anny follows vm24.
RIG = body_mesh.RIG
BONE_TABLE = body_mesh.BONE_TABLE
get_anny_model = body_mesh.anny_model


@dataclass
class AnnyFrames:
    vertices: np.ndarray      # (T, V, 3) float32
    faces: np.ndarray         # (F, 3) int64
    joints_world: np.ndarray  # (T, 24, 3) float32
    bone_heads: np.ndarray    # (T, B, 3) float32
    bone_names: tuple[str, ...]
    floor_shift: float        # metres added to z to put the soles on z = 0


def _phenotype_kwargs(model, phenotype: dict[str, float] | None, device) -> dict[str, torch.Tensor]:
    phenotype = dict(phenotype or {})
    unknown = set(phenotype) - set(model.phenotype_labels)
    assert not unknown, f"unknown phenotype {sorted(unknown)}; valid: {list(model.phenotype_labels)}"
    return {k: torch.tensor([float(phenotype.get(k, 0.5))], dtype=torch.float32, device=device)
            for k in model.phenotype_labels}


def phenotype_for_motion(motion: Motion, base: dict[str, float] | None = None) -> dict[str, float]:
    """``base`` with the anny ``height`` that matches the performer's rest ankle-to-head height
    (anny: height 0 -> 1.12 m, 0.5 -> 1.625 m, 1 -> 2.14 m standing; linear in between)."""
    rest = sk.rest_positions(motion.rest_offsets)
    span = rest[sk.INDEX["head"], 2] - rest[sk.INDEX["left_ankle"], 2]
    # anny default (height 0.5): head bone head to ankle = 0.606 + 0.799 m = 1.405 m for 1.625 m stature
    stature = 1.625 * span / 1.405
    out = dict(base or {})
    out["height"] = float(np.clip((stature - 1.12) / (2.14 - 1.12), 0.0, 1.0))
    return out


def _rest_corrections(model, rest_heads: np.ndarray, rest_offsets: np.ndarray) -> np.ndarray:
    """(B, 3, 3) C per anny bone: rotation taking anny's rest bone onto our T-pose rest bone."""
    return body_mesh.rest_corrections(model.bone_labels, rest_heads, rest_offsets)


def _leg_length(heads: np.ndarray) -> float:
    return float(np.linalg.norm(heads[..., 1, :] - heads[..., 0, :], axis=-1).mean()
                 + np.linalg.norm(heads[..., 2, :] - heads[..., 1, :], axis=-1).mean())


def pose_anny(motion: Motion, phenotype: dict[str, float] | None = None, frames: slice | None = None,
              device: str = "cpu", batch_size: int = 64) -> AnnyFrames:
    """Posed anny meshes and joints for ``motion`` (see the module docstring)."""
    model = get_anny_model(device)
    names = tuple(model.bone_labels)
    idx = {n: i for i, n in enumerate(names)}
    dev = torch.device(device)
    ph = _phenotype_kwargs(model, phenotype, dev)
    with torch.no_grad():
        rest = model(None, phenotype_kwargs=ph, return_bone_ends=True)
    rest_heads = rest["rest_bone_heads"][0].double().cpu().numpy()               # (B, 3)
    rest_R = rest["rest_bone_poses"][0, :, :3, :3].double().cpu().numpy()        # (B, 3, 3)
    rest_verts = rest["rest_vertices"][0].double().cpu().numpy()                 # (V, 3)
    C = _rest_corrections(model, rest_heads, motion.rest_offsets)                # (B, 3, 3)
    drive = np.array([sk.INDEX[BONE_TABLE[n][0]] for n in names])                # (B,)

    Rw = motion.world_rotations()                                                # (T, 24, 3, 3)
    D = Rw[:, drive] @ C[None] @ rest_R[None]                                    # (T, B, 3, 3)
    # root: scale the pelvis path by anny's leg length over the performer's
    leg_anny = _leg_length(rest_heads[[idx["LeftUpLeg"], idx["LeftLeg"], idx["LeftFoot"]]])
    leg_perf = _leg_length(motion.joints_world[:, [sk.INDEX["left_hip"], sk.INDEX["left_knee"], sk.INDEX["left_ankle"]]])
    root = motion.root_translation * (leg_anny / leg_perf)                       # (T, 3)

    # floor: from all frames' bone heads (cheap FK, no skinning), soles from anny's rest mesh
    feet = [idx[n] for n in ("LeftFoot", "LeftToeBase", "RightFoot", "RightToeBase")]
    sole = rest_heads[feet, 2] - rest_verts[:, 2].min()                          # (4,)
    heads_all = _bone_heads(model, ph, D, root, dev, batch_size)                 # (T, B, 3)
    floor = float(np.percentile((heads_all[:, feet, 2] - sole).min(axis=1), 2.0))
    shift = -floor

    sel = np.arange(motion.num_frames)[frames if frames is not None else slice(None)]
    verts, heads = [], []
    with torch.no_grad():
        for k in range(0, len(sel), batch_size):
            ii = sel[k:k + batch_size]
            delta = torch.zeros((len(ii), len(names), 4, 4), dtype=torch.float32, device=dev)
            delta[:, :, :3, :3] = torch.as_tensor(D[ii], dtype=torch.float32)
            delta[:, 0, :3, 3] = torch.as_tensor(root[ii], dtype=torch.float32)
            delta[:, :, 3, 3] = 1.0
            out = model(delta, phenotype_kwargs=ph, pose_parameterization="world-orient", return_bone_ends=True)
            verts.append(out["vertices"].cpu().numpy())
            heads.append(out["bone_heads"].cpu().numpy())
    V = np.concatenate(verts) if verts else np.zeros((0, rest_verts.shape[0], 3), np.float32)
    H = np.concatenate(heads) if heads else np.zeros((0, len(names), 3), np.float32)
    V[..., 2] += shift
    H[..., 2] += shift
    joints = H[:, [idx[sk.ANNY_CMU_MB_BONE[n]] for n in sk.JOINT_NAMES]]
    faces = model.get_triangular_faces().cpu().numpy().astype(np.int64)
    return AnnyFrames(vertices=V.astype(np.float32), faces=faces, joints_world=joints.astype(np.float32),
                      bone_heads=H.astype(np.float32), bone_names=names, floor_shift=shift)


def _bone_heads(model, ph, D: np.ndarray, root: np.ndarray, dev, batch_size: int) -> np.ndarray:
    """Bone heads (T, B, 3) from world orientations D and the root position, without skinning."""
    with torch.no_grad():
        rest_model = model.get_rest_model(model._get_phenotype_blendshape_coefficients(
            *model.get_tensor_inputs(None, ph, None, None)[1:]))
    rest_poses = rest_model["rest_bone_poses"]
    out = []
    with torch.no_grad():
        for k in range(0, len(D), 4 * batch_size):
            d = torch.zeros((len(D[k:k + 4 * batch_size]), D.shape[1], 4, 4), dtype=torch.float32, device=dev)
            d[:, :, :3, :3] = torch.as_tensor(D[k:k + 4 * batch_size], dtype=torch.float32)
            d[:, 0, :3, 3] = torch.as_tensor(root[k:k + 4 * batch_size], dtype=torch.float32)
            d[:, :, 3, 3] = 1.0
            _, poses = model.get_bone_transforms(d, rest_poses, pose_parameterization="world-orient")
            out.append(poses[..., :3, 3].cpu().numpy())
    return np.concatenate(out)
