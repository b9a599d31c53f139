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
    compensate_camera: bool = True   # moving camera: remove its measured motion (Clip.camera_tracks)
    camera_smoothing: float = 0.3    # s, filter of the measured camera path (keeps handheld shake of ~1 Hz)


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

    def camera_motion(self, P_cam: np.ndarray, foot_cam: np.ndarray, valid: np.ndarray, clip: Clip):
        """The moving camera's poses (``X_t = R_t X_0 + t_t``) from the background tracks, with the floor
        of the first second (from the body) for metric translation; None when not measured."""
        from .. import camera_motion as cm
        from .. import trajectory as tr

        tracks = clip.camera_tracks
        if tracks is None or not self.cfg.compensate_camera or len(tracks.matches) != len(valid):
            return None   # not measured, or the tracks span other frames (one shot of an edited clip)
        first = np.zeros(len(valid), bool)
        first[:max(10, int(round(clip.fps)))] = True
        first &= valid
        if first.sum() < 3:
            first = valid
        torso_up = P_cam[:, sk.INDEX["neck"]] - P_cam[:, 0]
        wf0, _ = tr.estimate_world(foot_cam[first], torso_up[first], P_cam[first, 0], valid[first])
        K = cm.tracking_intrinsics(tracks, clip.focal_px, clip.width)
        R, t, how = cm.camera_poses(tracks, K, wf0.B[:, 2], wf0.origin)
        if self.cfg.camera_smoothing > 0:   # tracking noise would otherwise reach the body as jitter
            from scipy.spatial.transform import Rotation

            rv = tr.smooth(Rotation.from_matrix(R).as_rotvec(), clip.fps, self.cfg.camera_smoothing)
            R = Rotation.from_rotvec(rv).as_matrix()
            t = tr.smooth(t, clip.fps, self.cfg.camera_smoothing)
        return R, t, how

    def __call__(self, track, motion: BodyMotion, clip: Clip, report: Report) -> Trajectory:
        from .. import trajectory as tr
        from ..geometry.frames import BC_TO_CV

        report(0, 3)
        t_cam = self.camera_root(track, motion, clip)
        report(1, 3)
        P_cam = motion.joints @ BC_TO_CV.T + t_cam[:, None]                      # (T, J, 3) camera t
        foot_cam = motion.anchors[:, motion.foot_anchors] @ BC_TO_CV.T + t_cam[:, None]
        static = camera_is_static(clip)
        cam = None if static else self.camera_motion(P_cam, foot_cam, track.valid, clip)
        if cam is not None:   # into the first frame's camera: X_0 = R_t^T (X_t - t_t)
            R_c, t_c, how = cam
            P_cam = np.einsum("tba,tjb->tja", R_c, P_cam - t_c[:, None])
            foot_cam = np.einsum("tba,tjb->tja", R_c, foot_cam - t_c[:, None])
        torso_up = P_cam[:, sk.INDEX["neck"]] - P_cam[:, 0]
        wf, info = tr.estimate_world(foot_cam, torso_up, P_cam[:, 0], track.valid)
        if clip.camera == "auto":
            info["camera_motion"] = None if clip.camera_moving is None else (
                "moving" if clip.camera_moving else "static")
        if cam is not None:
            info["camera_estimate"] = {"floor": float((cam[2] == 2).mean()), "rotation_only": float((cam[2] == 1).mean()),
                                       "held": float((cam[2] == 0).mean())}
            if (cam[2] == 2).mean() < 0.5:
                clip.warn("moving_camera", "The camera moves and the floor was seen in too few frames to measure "
                                           "how far it travelled; the path may drift.")
        elif not static:
            clip.warn("moving_camera", "The camera seems to move: its motion could not be measured, so the "
                                       "trajectory is relative to the camera and may drift or slide.")
        # world rotations/translations: p_world = B^T (p_cam0 - origin); camera t: X_t = R_t (B p + origin) + t_t
        R_root_cv = np.einsum("bc,tcd->tbd", BC_TO_CV, motion.rotations[:, 0])
        E = np.repeat(wf.extrinsic()[None], len(t_cam), axis=0)
        if cam is not None:
            R_root_cv = np.einsum("tba,tbd->tad", cam[0], R_root_cv)
            E[:, :3, :] = np.einsum("tab,tbc->tac", cam[0], E[:, :3, :])
            E[:, :3, 3] += cam[1]
        R_root_w = np.einsum("ab,tbd->tad", wf.B.T, R_root_cv)
        root_w = wf.to_world(P_cam[:, 0])
        report(2, 3)
        return Trajectory(root_world=root_w, root_orient_world=R_root_w, camera_extrinsics=E,
                          camera_static=static, info=info)
