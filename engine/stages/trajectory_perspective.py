"""``trajectory`` stage ``perspective``: the v1 static-camera trajectory (engine/trajectory.py).

Per frame, the camera-frame translation that makes the body's anchors project onto their landmarks;
depth outliers dropped and gaps filled; smoothed (depth over a longer window); then the ground plane
and a gravity-aligned, Z-up world. A moving camera is reported, not compensated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import skeleton as sk
from ..errors import EngineError
from . import Report, register
from .records import BodyMotion, Clip, Trajectory


@dataclass(frozen=True)
class PerspectiveConfig:
    smoothing: float = 0.17          # s, pre-filter of the 2D landmarks (as the body stage's)
    xy_smoothing: float = 0.2        # s, image-plane position of the root
    # depth from perspective is the noisiest coordinate: a 1 s window (0.5 s gave RTE 21 %, 1 s 19 % on the
    # static dev clips; people rarely change their distance to the camera in sub-second steps)
    depth_smoothing: float = 1.0
    depth_outlier_tol: float = 0.15  # relative distance from the running median depth that drops a frame
    min_support: float = 2.0         # sum of anchor weights below which a frame's translation is not trusted
    compensate_rotation: bool = True  # moving camera: remove its measured rotation (Clip.camera_rotations)


def camera_is_static(clip: Clip) -> bool:
    """The user's hint wins; in ``auto`` the camera-motion meter decides (static when it could not tell)."""
    if clip.camera == "auto":
        return clip.camera_moving is not True
    return clip.camera == "static"


@register
class PerspectiveTrajectory:
    kind, name = "trajectory", "perspective"
    Config = PerspectiveConfig

    def __init__(self, cfg: PerspectiveConfig):
        self.cfg = cfg

    @classmethod
    def from_config(cls, cfg: PerspectiveConfig, device: str = "cpu") -> "PerspectiveTrajectory":  # noqa: ARG003
        return cls(cfg)  # numpy only

    @classmethod
    def describe(cls) -> dict:
        return {"weights": None, "weights_found": True, "source": "geometry (no learned weights)"}

    def camera_root(self, track, motion: BodyMotion, clip: Clip) -> np.ndarray:
        """(T, 3) camera-frame (OpenCV) position of the body-camera origin, smoothed, gaps filled."""
        from .. import trajectory as tr
        from ..geometry.frames import BC_TO_CV

        cfg = self.cfg
        image = tr.fill_gaps(track.image, track.valid)
        if cfg.smoothing > 0:
            image = tr.smooth(image, clip.fps, cfg.smoothing)
        uv = np.stack([image[:, idx, :2].mean(1) for idx in motion.anchor_landmarks], 1) \
            * np.array([clip.width, clip.height])
        del image
        t_cam = tr.camera_translation(motion.anchors @ BC_TO_CV.T, uv, motion.anchor_weights, clip.intrinsics)
        if not np.isfinite(t_cam).any():
            raise EngineError("no_person", "The person could not be placed in front of the camera "
                                           "(landmarks inconsistent in every frame).")
        t_cam = tr.reject_depth_outliers(t_cam, motion.anchor_weights.sum(1), clip.fps,
                                         rel_tol=cfg.depth_outlier_tol, min_support=cfg.min_support)
        if not np.isfinite(t_cam).any():
            raise EngineError("no_person", "The person is not visible well enough in any frame to place "
                                           "them in front of the camera.")
        t_cam = tr.fill_gaps(t_cam)
        t_cam[:, :2] = tr.smooth(t_cam[:, :2], clip.fps, cfg.xy_smoothing)
        t_cam[:, 2] = tr.smooth(t_cam[:, 2:], clip.fps, cfg.depth_smoothing)[:, 0]
        return t_cam

    def __call__(self, track, motion: BodyMotion, clip: Clip, report: Report) -> Trajectory:
        from .. import trajectory as tr
        from ..geometry.frames import BC_TO_CV

        report(0, 3)
        t_cam = self.camera_root(track, motion, clip)
        report(1, 3)
        P_cam = motion.joints @ BC_TO_CV.T + t_cam[:, None]                      # (T, J, 3)
        foot_cam = motion.anchors[:, motion.foot_anchors] @ BC_TO_CV.T + t_cam[:, None]
        static = camera_is_static(clip)
        R_cam = None if static or not self.cfg.compensate_rotation else clip.camera_rotations
        if R_cam is not None:   # into the first frame's camera axes: X_0 = R_t^T X_t (rotation only)
            P_cam = np.einsum("tba,tjb->tja", R_cam, P_cam)
            foot_cam = np.einsum("tba,tjb->tja", R_cam, foot_cam)
        torso_up = P_cam[:, sk.INDEX["neck"]] - P_cam[:, 0]
        wf, info = tr.estimate_world(foot_cam, torso_up, P_cam[:, 0], track.valid)
        if clip.camera == "auto":
            info["camera_motion"] = None if clip.camera_moving is None else (
                "moving" if clip.camera_moving else "static")
        info["camera_rotation"] = "estimated" if R_cam is not None else "none"
        if not static and R_cam is None:
            clip.warn("moving_camera", "The camera seems to move: its motion could not be measured, so the "
                                       "trajectory is relative to the camera and may drift or slide.")
        elif not static:
            clip.warn("moving_camera", "The camera moves: its rotation was measured from the background and "
                                       "removed; a camera that also travels (dolly, tracking shot) is not yet "
                                       "compensated, so the path may drift.")
        # world rotations/translations: p_world = B^T (p_cam0 - origin); camera t: X_t = R_t (B p + origin)
        R_root_cv = np.einsum("bc,tcd->tbd", BC_TO_CV, motion.rotations[:, 0])
        if R_cam is not None:
            R_root_cv = np.einsum("tba,tbd->tad", R_cam, R_root_cv)
        R_root_w = np.einsum("ab,tbd->tad", wf.B.T, R_root_cv)
        root_w = wf.to_world(P_cam[:, 0])
        E = np.repeat(wf.extrinsic()[None], len(root_w), axis=0)
        if R_cam is not None:
            E[:, :3, :] = np.einsum("tab,tbc->tac", R_cam, E[:, :3, :])
        report(2, 3)
        return Trajectory(root_world=root_w, root_orient_world=R_root_w, camera_extrinsics=E,
                          camera_static=static, info=info)
