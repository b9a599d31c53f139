"""``body`` stage ``solve``: the v1 optimisation fit of the vm24 skeleton to BlazePose landmarks.

Landmarks are gap-filled and pre-filtered (``SolveConfig.smoothing``), turned into the body-camera
frame, the bone lengths measured, then :func:`engine.solve.solve_body` fits rotations. The anchors for
the trajectory are the fitted skeleton's landmark target points (``solve.TARGETS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import skeleton as sk
from ..landmarks import TORSO
from . import Report, register
from .records import BodyMotion, Clip


@dataclass(frozen=True)
class SolveConfig:
    # Landmark pre-filter: a zero-lag Savitzky-Golay filter (order 2) over ``smoothing`` seconds. 0.17 s is
    # TAR's 5-frame window at 30 fps; on fast mocap (kicks, throws, martial arts) it moves joints by 1.3 mm
    # on average (99th percentile 7.7 mm), while 0.25 s already flattens peaks by 36 mm. 0 = off.
    smoothing: float = 0.17
    # refinement (Adam over chunks of frames)
    iterations: int = 40
    lr: float = 0.02
    robust_scale: float = 0.05   # metres, Geman-McClure scale of the data term
    w_hinge: float = 2.0
    w_spine: float = 0.05
    # acceleration penalty: 20 halves jitter on noisy landmarks without raising MPJPE
    w_smooth: float = 20.0
    chunk: int = 256
    overlap: int = 16
    min_visibility: float = 0.05  # floor of the data weights of detected frames (hidden points still pull a little)


def prepare_landmarks(track, fps: float, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Gap-filled, pre-filtered world landmarks in the body-camera frame (T, 33, 3) and the visibility
    (T, 33), zero on frames without a detection."""
    from .. import trajectory
    from ..geometry.frames import blazepose_to_bc

    world = trajectory.fill_gaps(track.world, track.valid)
    if smoothing > 0:
        world = trajectory.smooth(world, fps, smoothing)
    vis = np.where(track.valid[:, None], track.visibility, 0.0).astype(np.float32)
    return blazepose_to_bc(world), vis


def target_confidence(vis: np.ndarray, target_landmarks: list[list[int]], target_joint: list[int]) -> np.ndarray:
    """(T, J) per-joint confidence: the best of its targets' weakest landmark; joints without a target
    (spine, collars, pelvis) take the mean visibility of the torso's corners."""
    conf = np.zeros((vis.shape[0], sk.J), np.float32)
    by_joint: dict[int, list[int]] = {}
    for k, j in enumerate(target_joint):
        by_joint.setdefault(j, []).append(k)
    for j in range(sk.J):
        ks = by_joint.get(j)
        if ks:
            conf[:, j] = np.stack([vis[:, target_landmarks[k]].min(1) for k in ks], 1).max(1)
        else:
            conf[:, j] = vis[:, list(TORSO)].mean(1)
    return conf


@register
class SolveBody:
    kind, name = "body", "solve"
    Config = SolveConfig

    def __init__(self, cfg: SolveConfig, device: str):
        self.cfg, self.device = cfg, device

    @classmethod
    def from_config(cls, cfg: SolveConfig, device: str = "cpu") -> "SolveBody":
        return cls(cfg, device)

    @classmethod
    def describe(cls) -> dict:
        return {"weights": None, "weights_found": True, "source": "optimisation (no learned weights)"}

    def __call__(self, track, clip: Clip, report: Report) -> BodyMotion:
        import torch

        from .. import solve

        Y, vis = prepare_landmarks(track, clip.fps, self.cfg.smoothing)
        valid = track.valid
        body = solve.measure_body(Y[valid], vis[valid])
        R_local, root = solve.solve_body(Y, np.maximum(vis, self.cfg.min_visibility * valid[:, None]), body,
                                         self.cfg, device=self.device, progress=report)
        del Y
        Rw, P = solve.fk_torch(torch.as_tensor(R_local), torch.as_tensor(root),
                               torch.as_tensor(body.rest_offsets, dtype=torch.float32))
        anchors = solve.target_points(Rw, P, torch.as_tensor(body.target_offsets, dtype=torch.float32)).numpy()
        target_joint = [sk.INDEX[j] for j, *_ in solve.TARGETS]
        weights = np.stack([vis[:, idx].min(1) for idx in solve.TARGET_LANDMARKS], 1) * solve.TARGET_WEIGHT
        height = float(body.height)
        return BodyMotion(
            rotations=R_local, root=root, rest_offsets=body.rest_offsets, joints=P.numpy(), height=height,
            joint_confidence=target_confidence(vis, solve.TARGET_LANDMARKS, target_joint),
            anchors=anchors, anchor_landmarks=[list(x) for x in solve.TARGET_LANDMARKS],
            anchor_weights=weights,
            foot_anchors=[k for k, j in enumerate(target_joint) if sk.JOINT_NAMES[j].endswith("_ankle")],
            shape_names=("height",),
            shape_params=np.asarray([np.interp(height, [1.12, 1.625, 2.14], [0.0, 0.5, 1.0])], np.float32),
            info={"body_scales": body.scales})
