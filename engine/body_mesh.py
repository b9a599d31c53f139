"""The body mesh written into the result: the anny body with the recovered shape, in the rest pose of
the result's skeleton (vm24 T-pose), skinned to its joints (``mesh_*`` members, docs/result_format.md).

    from engine.body_mesh import mesh_fields
    fields = mesh_fields(rest_offsets, shape_names, shape_params)   # {"mesh_vertices": (V, 3), ...}

How:
1. anny (rig ``cmu_mb``) is built with the result's phenotype (``shape_names``/``shape_params``; the
   ones anny does not know are ignored, missing ones are 0.5).
2. anny's rest pose is an A-pose; each anny bone is turned by a rest correction ``C`` (the rotation
   that takes anny's rest bone onto our T-pose bone, ``rest_corrections``; the same table drives anny
   from vm24 motions in scripts/vmkit/mocap/anny_pose.py) in anny's ``world-orient`` mode, with the
   Hips head on the result's rest pelvis: anny stands in our T-pose.
3. Its bone lengths still differ from the result's by a few centimetres. Every vertex is moved by the
   displacement of the bone it is skinned to, interpolated along the bone: a vertex on joint j's bone
   (j -> its main child c) at fraction t of the way gets ``(1 - t) * d_j + t * d_c`` where ``d`` is
   (result rest joint - anny T-pose joint). Leaves and branching joints use ``d_j``.
4. Skinning: each anny bone's weight goes to the vm24 joint that drives it (``BONE_TABLE``), the
   weights are summed per joint and the top ``K`` (4) kept and renormalised. With these weights and
   vertices, linear blend skinning by the result's joint transforms (``p_t[j] + R_world_t[j] (v - p_rest[j])``)
   is what Blender's Armature modifier computes on the armature the add-on builds.

Numpy + torch + anny; never bpy. The anny model is built once per process and device (~2 s with the
prebuilt cache, engine/environment.py).
"""

from __future__ import annotations

import functools

import numpy as np

from . import skeleton as sk

RIG = "cmu_mb"
TOP_K = 4
MESH_FIELDS = ("mesh_vertices", "mesh_faces", "mesh_weight_joints", "mesh_weights")

# anny bone -> (vm24 joint whose world rotation drives it, anny bone whose rest direction defines C,
#               vm24 joint whose rest offset is the target direction for C (None: C from _BRANCH or a parent))
_SIDE_BONES = {
    "{S}HipJoint": ("pelvis", None, None),
    "{L}UpLeg": ("{s}_hip", "{L}Leg", "{s}_knee"),
    "{L}Leg": ("{s}_knee", "{L}Foot", "{s}_ankle"),
    "{L}Foot": ("{s}_ankle", "{L}ToeBase", "{s}_foot"),
    "{L}ToeBase": ("{s}_foot", None, None),
    "{L}Shoulder": ("{s}_collar", "{L}Arm", "{s}_shoulder"),
    "{L}Arm": ("{s}_shoulder", "{L}ForeArm", "{s}_elbow"),
    "{L}ForeArm": ("{s}_elbow", "{L}Hand", "{s}_wrist"),
    "{L}Hand": ("{s}_wrist", "{L}HandFinger1", "{s}_hand"),
    "{L}FingerBase": ("{s}_hand", "@{L}Hand", None),
    "{L}HandFinger1": ("{s}_hand", "@{L}Hand", None),
    "{S}Thumb": ("{s}_hand", "@{L}Hand", None),
}
_CENTRE_BONES = {
    "Hips": ("pelvis", None, None),
    "LowerBack": ("spine1", "Spine", "spine2"),
    "Spine": ("spine2", "Spine1", "spine3"),
    "Spine1": ("spine3", None, None),
    "Neck": ("neck", "Head", "head"),
    "Neck1": ("neck", "@Neck", None),
    "Head": ("head", None, None),
}
# Branching joints: C from a Kabsch fit of anny's child heads onto our rest child offsets.
BRANCH = {
    "Hips": (("LeftUpLeg", "left_hip"), ("RightUpLeg", "right_hip"), ("LowerBack", "spine1")),
    "Spine1": (("Neck", "neck"), ("LeftShoulder", "left_collar"), ("RightShoulder", "right_collar")),
}


def _bone_table() -> dict[str, tuple[str, str | None, str | None]]:
    out = dict(_CENTRE_BONES)
    for S, L, s in (("L", "Left", "left"), ("R", "Right", "right")):
        for k, v in _SIDE_BONES.items():
            f = lambda x: None if x is None else x.replace("{S}", S).replace("{L}", L).replace("{s}", s)
            out[f(k)] = (f(v[0]), f(v[1]), f(v[2]))  # type: ignore[assignment]
    return out


BONE_TABLE = _bone_table()


@functools.lru_cache(maxsize=4)
def anny_model(device: str = "cpu"):
    """The anny model with the cmu_mb rig, built once per process and device."""
    import torch

    from .environment import use_bundled_anny_cache

    use_bundled_anny_cache()
    import anny  # heavy import, only when a body is needed

    model = anny.Anny(rig=RIG)
    model.eval()
    return model.to(torch.device(device))


def rest_corrections(bone_names, rest_heads: np.ndarray, rest_offsets: np.ndarray) -> np.ndarray:
    """(B, 3, 3) C per anny bone: the rotation taking anny's rest bone onto our T-pose rest bone."""
    import torch

    from .geometry import rotations as rot

    names = list(bone_names)
    idx = {n: i for i, n in enumerate(names)}
    C = np.tile(np.eye(3), (len(names), 1, 1))
    done: dict[str, np.ndarray] = {}
    for b, pairs in BRANCH.items():
        x = np.stack([rest_heads[idx[c]] - rest_heads[idx[b]] for c, _ in pairs])        # (3, 3)
        y = np.stack([rest_offsets[sk.INDEX[j]] for _, j in pairs])                      # (3, 3)
        done[b] = rot.align_vectors(torch.as_tensor(x, dtype=torch.float64),
                                    torch.as_tensor(y, dtype=torch.float64)).numpy()
    for b, (_, tail_bone, child_joint) in BONE_TABLE.items():
        if b in done:
            continue
        if tail_bone is not None and not tail_bone.startswith("@"):
            a = rest_heads[idx[tail_bone]] - rest_heads[idx[b]]
            c = np.asarray(rest_offsets[sk.INDEX[child_joint]], np.float64)
            done[b] = rot.shortest_arc(torch.as_tensor(a / np.linalg.norm(a), dtype=torch.float64),
                                       torch.as_tensor(c / np.linalg.norm(c), dtype=torch.float64)).numpy()
    for b, (_, tail_bone, _) in BONE_TABLE.items():
        if b not in done:
            done[b] = done[tail_bone[1:]] if tail_bone else (done["Hips"] if "HipJoint" in b else np.eye(3))
    for b, c in done.items():
        C[idx[b]] = c
    return C


def _phenotype(model, shape_names, shape_params) -> dict[str, float]:
    known = set(model.phenotype_labels)
    return {str(n): float(np.clip(v, 0.0, 1.0)) for n, v in zip(shape_names, shape_params) if str(n) in known}


def _main_child(parents, rest_offsets: np.ndarray) -> list[int]:
    """Each joint's single child (-1 for leaves and branching joints)."""
    kids = sk.children(tuple(int(p) for p in parents))
    return [k[0] if len(k) == 1 else -1 for k in kids]


def mesh_fields(rest_offsets: np.ndarray, shape_names, shape_params, *, device: str = "cpu",
                top_k: int = TOP_K) -> dict[str, np.ndarray]:
    """The ``mesh_*`` result members for a vm24 skeleton (``rest_offsets`` (24, 3)) and anny shape.
    One forward pass of the model (~0.1 s on a CPU): the pipeline always runs it on the CPU."""
    import torch

    rest_offsets = np.asarray(rest_offsets, np.float64)
    assert rest_offsets.shape == (sk.J, 3), f"rest_offsets {rest_offsets.shape}, expected ({sk.J}, 3)"
    model = anny_model(device)
    names = list(model.bone_labels)
    idx = {n: i for i, n in enumerate(names)}
    dev = torch.device(device)
    ph = _phenotype(model, shape_names, shape_params)
    ph_kw = {k: torch.tensor([float(ph.get(k, 0.5))], dtype=torch.float32, device=dev)
             for k in model.phenotype_labels}
    with torch.no_grad():
        rest = model(None, phenotype_kwargs=ph_kw, return_bone_ends=True)
    rest_heads = rest["rest_bone_heads"][0].double().cpu().numpy()                 # (B, 3)
    rest_R = rest["rest_bone_poses"][0, :, :3, :3].double().cpu().numpy()          # (B, 3, 3)
    C = rest_corrections(names, rest_heads, rest_offsets)                          # (B, 3, 3)
    rest_joints = sk.rest_positions(rest_offsets)                                  # (24, 3)

    # 2. anny in our T-pose, Hips head on our rest pelvis
    delta = torch.zeros((1, len(names), 4, 4), dtype=torch.float32, device=dev)   # (1, B, 4, 4)
    delta[0, :, :3, :3] = torch.as_tensor(C @ rest_R, dtype=torch.float32)
    delta[0, 0, :3, 3] = torch.as_tensor(rest_joints[0], dtype=torch.float32)
    delta[0, :, 3, 3] = 1.0
    with torch.no_grad():
        out = model(delta, phenotype_kwargs=ph_kw, pose_parameterization="world-orient", return_bone_ends=True)
    verts = out["vertices"][0].double().cpu().numpy()                              # (V, 3)
    heads = out["bone_heads"][0].double().cpu().numpy()                            # (B, 3)
    anny_joints = heads[[idx[sk.ANNY_CMU_MB_BONE[n]] for n in sk.JOINT_NAMES]]     # (24, 3)

    # 4. weights per vm24 joint (dense (V, 24), then top-k)
    bone_joint = np.array([sk.INDEX[BONE_TABLE[n][0]] for n in names])            # (B,)
    vbi = model.vertex_bone_indices.cpu().numpy()                                  # (V, 7)
    vbw = model.vertex_bone_weights.double().cpu().numpy()                         # (V, 7)
    dense = np.zeros((len(verts), sk.J))                                           # (V, 24)
    np.add.at(dense, (np.arange(len(verts))[:, None], bone_joint[vbi]), vbw)
    order = np.argsort(-dense, axis=1, kind="stable")[:, :top_k]                   # (V, K)
    w = np.take_along_axis(dense, order, axis=1)                                   # (V, K)
    w = np.where(w > 1e-4, w, 0.0)
    w /= w.sum(axis=1, keepdims=True)

    # 3. bone lengths onto the result's: displacement interpolated along each vertex's dominant bone
    d = rest_joints - anny_joints                                                  # (24, 3)
    child = _main_child(sk.PARENTS, rest_offsets)
    disp = np.zeros_like(verts)                                                    # (V, 3)
    for k in range(top_k):
        j = order[:, k]                                                            # (V,)
        c = np.array(child)[j]                                                     # (V,)
        has = c >= 0
        a, b = anny_joints[j], anny_joints[np.where(has, c, j)]                    # (V, 3)
        seg = b - a
        t = np.einsum("vi,vi->v", verts - a, seg) / np.maximum(np.einsum("vi,vi->v", seg, seg), 1e-12)
        t = np.where(has, np.clip(t, 0.0, 1.0), 0.0)
        dv = (1 - t)[:, None] * d[j] + t[:, None] * d[np.where(has, c, j)]
        disp += w[:, k:k + 1] * dv
    verts = verts + disp

    faces = model.get_triangular_faces().cpu().numpy()
    return {
        "mesh_vertices": verts.astype(np.float32),
        "mesh_faces": faces.astype(np.int32),
        "mesh_weight_joints": order.astype(np.int32),
        "mesh_weights": w.astype(np.float32),
    }
