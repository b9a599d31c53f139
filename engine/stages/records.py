"""The records passed between stages (explicit data; no stage reads another's internals).

Frames and units: see engine/geometry/frames.py and docs/conventions.md. ``T`` frames, ``J`` = 24 vm24
joints, ``K`` anchors, ``F`` foot points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..pose import LandmarkTrack  # noqa: F401  (the keypoints stage's output, re-exported here)


@dataclass(frozen=True)
class Clip:
    """What every stage may know about the clip (not the frames: those went through keypoints)."""

    fps: float                       # frames per second of the track (output rate)
    width: int                       # displayed frame size in pixels (landmarks are normalised to it)
    height: int
    focal_px: float                  # focal length of the displayed frame
    camera: str = "auto"             # auto | static | moving (the user's hint)
    camera_moving: bool | None = None  # the camera-motion meter's verdict (None: could not tell)
    # background feature tracks (engine.camera_motion.CameraTracker; None: not measured)
    camera_tracks: Any = field(default=None, compare=False)
    warn: Callable[[str, str], None] = field(default=lambda code, message: None, compare=False)

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) OpenCV K, principal point at the centre."""
        return np.array([[self.focal_px, 0.0, self.width / 2.0], [0.0, self.focal_px, self.height / 2.0],
                         [0.0, 0.0, 1.0]])


@dataclass
class BodyMotion:
    """The body stage's output: the skeleton's motion in the body-camera frame, root-relative.

    ``anchors`` are skeleton points whose image position is observed: anchor ``k`` projects to the mean
    2D position of the landmarks ``anchor_landmarks[k]`` (normalised image coordinates of the track),
    trusted with ``anchor_weights[:, k]``. ``foot_anchors`` index the anchors on the feet (ground plane).
    """

    rotations: np.ndarray          # (T, J, 3, 3) local rotations; [:, 0] = root orientation, body-camera frame
    root: np.ndarray               # (T, 3) pelvis, body-camera frame, relative to the landmarks' hip centre
    rest_offsets: np.ndarray       # (J, 3) metres, one skeleton for the clip
    joints: np.ndarray             # (T, J, 3) joint positions (forward kinematics), body-camera frame
    height: float                  # standing height, metres
    joint_confidence: np.ndarray   # (T, J) 0..1
    anchors: np.ndarray            # (T, K, 3) body-camera frame, same origin as ``root``
    anchor_landmarks: list[list[int]]
    anchor_weights: np.ndarray     # (T, K)
    foot_anchors: list[int]
    shape_names: tuple[str, ...] = ("height",)
    shape_params: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float32))
    info: dict = field(default_factory=dict)  # goes to the result's meta_json (e.g. measured bone scales)


@dataclass
class Trajectory:
    """The trajectory stage's output: where the body is in a Z-up world and where the camera is."""

    root_world: np.ndarray          # (T, 3) pelvis position, world frame (Z up, floor at 0)
    root_orient_world: np.ndarray   # (T, 3, 3) root orientation in the world
    camera_extrinsics: np.ndarray   # (T, 4, 4) world -> OpenCV camera
    camera_static: bool
    info: dict = field(default_factory=dict)
    # (T, 4) bool foot contacts of skeleton.CONTACT_JOINTS predicted by the trajectory stage, if it does
    contacts: np.ndarray | None = None
