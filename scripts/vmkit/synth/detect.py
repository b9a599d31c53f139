"""BlazePose sanity check on a rendered clip (mediapipe, model_complexity=1: the offline model)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def detect_clip(path: Path, static_image_mode: bool = False) -> list:
    """Per frame: mediapipe pose_landmarks (or None)."""
    import mediapipe as mp

    out = []
    with mp.solutions.pose.Pose(static_image_mode=static_image_mode, model_complexity=1) as pose, \
            av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            res = pose.process(np.ascontiguousarray(rgb))
            out.append(res.pose_landmarks)
    return out


def detection_rate(path: Path, static_image_mode: bool = False) -> float:
    found = detect_clip(path, static_image_mode)
    return sum(lm is not None for lm in found) / max(len(found), 1)
