"""``body`` stage ``rope``: the learned Rope network (engine/rope) on the BlazePose track.

Rope reads the raw track (it handles missed frames and hidden landmarks itself; no pre-filter: its
5-frame centred window is its temporal filter) and returns vm24 local rotations in the body-camera
frame, the root relative to the landmarks' hip centre, and one skeleton for the clip. The anchors for
the trajectory are the joints whose BlazePose landmark names the same anatomy (shoulders, elbows,
wrists, knees, ankles) plus the hips, weighted by the landmarks' visibility.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import skeleton as sk
from ..landmarks import LM
from . import Report, register
from .records import BodyMotion, Clip

_ANCHOR_JOINTS = tuple(f"{s}_{p}" for p in ("hip", "shoulder", "elbow", "wrist", "knee", "ankle") for s in ("left", "right"))


@dataclass(frozen=True)
class RopeBodyConfig:
    weights: str = ""        # folder with config.json + rope.safetensors; "" = models/rope
    batch: int = 1024        # frames per forward pass
    smoothing: float = 0.25  # seconds, Savitzky-Golay over the output rotations and root (0 = off; Rope.predict)
    # Facing check: where Rope's torso faces more than ``flip_deg`` away from BlazePose's own torso (hips and
    # shoulders of its world landmarks, all four visible), "blazepose" turns Rope's body about the vertical
    # to BlazePose's facing; "rope" keeps Rope's.
    facing: str = "rope"
    flip_deg: float = 100.0
    refine: bool = False     # then align the pose with BlazePose's 2D landmarks (engine/rope/refine2d.py)
    refine_iterations: int = 30
    refine_prior: float = 0.05  # weight of the squared correction angle: higher keeps Rope's pose


@register
class RopeBody:
    kind, name = "body", "rope"
    Config = RopeBodyConfig

    def __init__(self, cfg: RopeBodyConfig, device: str):
        from ..rope import Rope
        from ..rope.infer import DEFAULT_DIR

        if cfg.facing not in ("rope", "blazepose"):
            from ..errors import EngineError

            raise EngineError("usage", f"--option body.facing must be 'rope' or 'blazepose', not {cfg.facing!r}.")
        self.cfg, self.device = cfg, device
        self.rope = Rope.load(cfg.weights or DEFAULT_DIR)

    @classmethod
    def from_config(cls, cfg: RopeBodyConfig, device: str = "cpu") -> "RopeBody":
        return cls(cfg, device)

    @classmethod
    def describe(cls) -> dict:
        from pathlib import Path

        d = Path(__file__).resolve().parents[2] / "models" / "rope"
        return {"weights": str(d / "rope.safetensors"), "weights_found": (d / "rope.safetensors").is_file(),
                "source": "Rope network trained on mocap with synthetic BlazePose observations (models/rope/MODEL_CARD.md)"}

    def __call__(self, track, clip: Clip, report: Report) -> BodyMotion:
        from .. import solve
        import torch

        T = len(track)
        report(0, T)
        out = self.rope.predict(track.image, track.world, track.visibility, track.valid, (clip.width, clip.height),
                                fps=clip.fps, smoothing=self.cfg.smoothing, device=self.device,
                                batch=self.cfg.batch, report=None if self.cfg.refine else report)
        if self.cfg.refine:
            from ..rope.refine2d import Refine2DConfig, refine_2d

            rotations = refine_2d(out.rotations, out.root, out.rest_offsets, track.image, track.visibility,
                                  track.valid, (clip.width, clip.height),
                                  Refine2DConfig(iterations=self.cfg.refine_iterations, prior=self.cfg.refine_prior),
                                  focal_px=clip.focal_px, height=out.height, device=self.device,
                                  report=lambda i, n: report(T * i // n, T))
            out = dataclasses.replace(out, rotations=rotations)
        if self.cfg.facing == "blazepose":
            out = face_like_blazepose(out, track, self.cfg.flip_deg)
        _, P = solve.fk_torch(torch.as_tensor(out.rotations), torch.as_tensor(out.root),
                              torch.as_tensor(out.rest_offsets))
        P = P.numpy()
        aj = [sk.INDEX[n] for n in _ANCHOR_JOINTS]
        al = [[LM[n]] for n in _ANCHOR_JOINTS]
        vis = np.where(track.valid[:, None], track.visibility, 0.0).astype(np.float32)
        weights = vis[:, [a[0] for a in al]] * out.joint_confidence[:, aj].clip(0.05, 1.0)
        return BodyMotion(
            rotations=out.rotations, root=out.root, rest_offsets=out.rest_offsets, joints=P, height=out.height,
            joint_confidence=out.joint_confidence, anchors=P[:, aj].copy(), anchor_landmarks=al,
            anchor_weights=weights.astype(np.float32),
            foot_anchors=[k for k, n in enumerate(_ANCHOR_JOINTS) if n.endswith("_ankle")],
            shape_names=("height",),
            shape_params=np.asarray([np.interp(out.height, [1.12, 1.625, 2.14], [0.0, 0.5, 1.0])], np.float32),
            info={"rope_window": self.rope.cfg.window, "frames": T})


def face_like_blazepose(out, track, flip_deg: float = 100.0):
    """Rope output -> the same with the body turned about the vertical (through the landmarks' hip centre)
    to BlazePose's torso facing, on the frames where the two differ by more than ``flip_deg`` and BlazePose
    saw the whole torso (visibility >= 0.5 at both hips and shoulders)."""
    from scipy.spatial.transform import Rotation

    from ..geometry.frames import blazepose_to_bc
    from ..landmarks import TORSO
    from ..tp.representation import heading_of

    _, P = sk.forward_kinematics(out.rotations.astype(np.float64), out.root.astype(np.float64),
                                 out.rest_offsets.astype(np.float64))
    sides = [[f"{s}_{p}" for p in ("hip", "shoulder")] for s in ("left", "right")]
    yaw_rope = heading_of(*(P[:, [sk.INDEX[n] for n in names]] for names in sides), smoothing=0.0)
    w = blazepose_to_bc(np.nan_to_num(np.asarray(track.world, np.float64)))
    yaw_bp = heading_of(*(w[:, [LM[n] for n in names]] for names in sides), smoothing=0.0)
    seen = np.asarray(track.valid, bool) & (np.nan_to_num(track.visibility[:, list(TORSO)]) >= 0.5).all(1)
    diff = (np.degrees(yaw_bp - yaw_rope) + 180.0) % 360.0 - 180.0
    flip = seen & (np.abs(diff) > flip_deg)
    if not flip.any():
        return out
    turn = Rotation.from_euler("z", diff[flip][:, None], degrees=True).as_matrix().astype(np.float32)   # (F, 3, 3)
    R, root = out.rotations.copy(), out.root.copy()
    R[flip, 0] = turn @ R[flip, 0]
    root[flip] = np.einsum("fab,fb->fa", turn, root[flip])
    return dataclasses.replace(out, rotations=R, root=root)
