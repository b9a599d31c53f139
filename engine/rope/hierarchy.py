"""Rope's body hierarchy over the vm24 skeleton and the 33 BlazePose landmarks.

Levels (RopeTP section 3.2): Indep (24 parts, one per vm24 joint), Inter (11 pairs that move together),
FulCo (6 coordinated segments), WhoBo (the whole body). A part is a set of vm24 joints; its landmarks
are those that fix the rotations of its joints (a joint's own landmarks and its child's, which give
the bone direction). They initialise HAGT's attention prior; the attention itself is learned, so a
hidden part can attend to the visible landmarks it moves with.
"""

from __future__ import annotations

import numpy as np

from .. import skeleton as sk
from ..pose import LM, N_LANDMARKS


def _side(names: list[str]) -> list[str]:
    return [n for s in ("left", "right") for n in (x.replace("SIDE", s) for x in names)]


_HEAD = ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
         "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right"]
_TORSO = ["left_shoulder", "right_shoulder", "left_hip", "right_hip"]

# vm24 joint -> landmarks that fix its rotation (its own and its child's)
JOINT_LANDMARKS: dict[str, list[str]] = {
    "pelvis": _TORSO,
    "spine1": _TORSO, "spine2": _TORSO, "spine3": _TORSO,
    "neck": ["left_shoulder", "right_shoulder", "nose", "left_ear", "right_ear"],
    "head": _HEAD,
}
for _s in ("left", "right"):
    JOINT_LANDMARKS.update({
        f"{_s}_hip": [f"{_s}_hip", f"{_s}_knee"],
        f"{_s}_knee": [f"{_s}_knee", f"{_s}_ankle"],
        f"{_s}_ankle": [f"{_s}_ankle", f"{_s}_heel", f"{_s}_foot_index"],
        f"{_s}_foot": [f"{_s}_heel", f"{_s}_foot_index"],
        f"{_s}_collar": [f"{_s}_shoulder", "left_shoulder", "right_shoulder"],
        f"{_s}_shoulder": [f"{_s}_shoulder", f"{_s}_elbow"],
        f"{_s}_elbow": [f"{_s}_elbow", f"{_s}_wrist"],
        f"{_s}_wrist": [f"{_s}_wrist", f"{_s}_pinky", f"{_s}_index", f"{_s}_thumb"],
        f"{_s}_hand": [f"{_s}_pinky", f"{_s}_index", f"{_s}_thumb"],
    })

INDEP: tuple[tuple[str, ...], ...] = tuple((n,) for n in sk.JOINT_NAMES)
INTER: tuple[tuple[str, ...], ...] = (
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),      # upper arm + forearm
    ("left_elbow", "left_wrist", "left_hand"), ("right_elbow", "right_wrist", "right_hand"),  # forearm + hand
    ("left_hip", "left_knee"), ("right_hip", "right_knee"),                  # thigh + shin
    ("left_knee", "left_ankle", "left_foot"), ("right_knee", "right_ankle", "right_foot"),    # shin + foot
    ("pelvis", "spine1", "left_hip", "right_hip"),                           # pelvis + hips
    ("spine2", "spine3", "left_collar", "right_collar"),                     # chest + collars
    ("spine3", "neck", "head"),                                              # neck + head
)
FULCO: tuple[tuple[str, ...], ...] = (
    tuple(_side(["SIDE_collar", "SIDE_shoulder", "SIDE_elbow", "SIDE_wrist", "SIDE_hand"])[:5]),
    tuple(_side(["SIDE_collar", "SIDE_shoulder", "SIDE_elbow", "SIDE_wrist", "SIDE_hand"])[5:]),
    tuple(_side(["SIDE_hip", "SIDE_knee", "SIDE_ankle", "SIDE_foot"])[:4]),
    tuple(_side(["SIDE_hip", "SIDE_knee", "SIDE_ankle", "SIDE_foot"])[4:]),
    ("pelvis", "spine1", "spine2", "spine3"),                                # torso
    ("neck", "head"),                                                        # head / neck
)
WHOBO: tuple[tuple[str, ...], ...] = (tuple(sk.JOINT_NAMES),)
LEVELS: dict[str, tuple[tuple[str, ...], ...]] = {"indep": INDEP, "inter": INTER, "fulco": FULCO}
assert (len(INDEP), len(INTER), len(FULCO)) == (24, 11, 6)


def membership(parts: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """(P, 33) 0/1: the landmarks of each part (union over its joints)."""
    m = np.zeros((len(parts), N_LANDMARKS), np.float32)
    for p, joints in enumerate(parts):
        for j in joints:
            for n in JOINT_LANDMARKS[j]:
                m[p, LM[n]] = 1.0
    return m


# Mirror permutation of the 33 landmarks (left <-> right), for augmentation.
LANDMARK_MIRROR: tuple[int, ...] = tuple(
    LM[n.replace("left", "right")] if "left" in n else LM[n.replace("right", "left")] if "right" in n else i
    for i, n in enumerate(LM))
