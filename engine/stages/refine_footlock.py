"""``refine`` stage ``footlock``: planted feet stay put (engine/footlock.py: two-bone IK on the legs)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..footlock import FootLockConfig
from . import Report, register
from .records import BodyMotion, Clip, Trajectory


@register
class FootLockRefine:
    kind, name = "refine", "footlock"
    Config = FootLockConfig

    def __init__(self, cfg: FootLockConfig):
        self.cfg = cfg

    @classmethod
    def from_config(cls, cfg: FootLockConfig, device: str = "cpu") -> "FootLockRefine":  # noqa: ARG003
        return cls(cfg)  # numpy only

    @classmethod
    def describe(cls) -> dict:
        return {"weights": None, "weights_found": True, "source": "inverse kinematics (no learned weights)"}

    def __call__(self, motion: BodyMotion, traj: Trajectory, clip: Clip, report: Report
                 ) -> tuple[BodyMotion, Trajectory]:
        from .. import skeleton as sk
        from ..footlock import lock_feet

        report(0, 1)
        R = np.array(motion.rotations, np.float64)
        R[:, 0] = traj.root_orient_world
        predicted = traj.contacts if self.cfg.use_predicted else None
        R_new, root_w, stance = lock_feet(R, traj.root_world, motion.rest_offsets, clip.fps, self.cfg, predicted)
        R_new[:, 0] = motion.rotations[:, 0]             # the body-camera root stays (the trajectory's wins)
        R_new = R_new.astype(np.float32)
        _, joints = sk.forward_kinematics(R_new, np.asarray(motion.root, np.float32),
                                          np.asarray(motion.rest_offsets, np.float32))
        info = {**motion.info, "foot_lock": {"stance_left": float(stance[:, 0].mean()),
                                             "stance_right": float(stance[:, 1].mean())}}
        report(1, 1)
        from ..trajectory import keep_in_view   # the shifted root still projects where it was seen

        root_w, E = keep_in_view(root_w, traj.root_world, traj.camera_extrinsics, traj.camera_static)
        traj = dataclasses.replace(traj, root_world=root_w, camera_extrinsics=E)
        return dataclasses.replace(motion, rotations=R_new, joints=joints, info=info), traj
