"""The landmark vocabulary: BlazePose GHUM's 33 body landmarks (the one definition in the project).

Index order is the model's output order. ``LEFT_*`` are the person's own left.
"""

from __future__ import annotations

N_LANDMARKS = 33
LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
LM: dict[str, int] = {n: i for i, n in enumerate(LANDMARK_NAMES)}

# The torso's four corners: the evidence for joints no landmark observes (spine, collars, pelvis).
TORSO: tuple[int, ...] = tuple(LM[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
HIPS: tuple[int, ...] = (LM["left_hip"], LM["right_hip"])

# left <-> right partner of every landmark (itself for the nose)
MIRROR: tuple[int, ...] = tuple(
    LM[n.replace("left", "right")] if "left" in n else LM[n.replace("right", "left")] if "right" in n else i
    for i, n in enumerate(LANDMARK_NAMES)
)
