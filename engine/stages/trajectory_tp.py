"""``trajectory`` stage ``tp``: the learned trajectory prior (engine/tp) on top of the perspective stage.

1. The perspective stage gives the world frame (gravity from the body and the floor), the body's world
   orientation (a moving camera's measured rotation removed) and a root path that is good evidence for
   a static camera and weaker for a moving one.
2. The body's root-relative joints are turned into that world and into each frame's heading frame
   (engine.tp.representation); TP samples the root's planar velocity, height and foot contacts from
   them with DDIM (``steps``), over overlapping windows blended at every step.
3. Evidence: at every step the estimate of the velocity and height is pulled toward the perspective
   path's, by ``static_weight`` or ``moving_weight`` times the frame's reliability (the person found
   and enough landmark support); where the person is missing the prior alone fills in.
4. The path is integrated along the body's heading from the perspective path's first position. The body
   stays where the camera saw it: with a static camera the root is moved onto the viewing ray through
   the perspective root (TP sets the distance along it); with a moving camera the camera's translation
   is re-derived instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import Report, register
from .records import BodyMotion, Clip, Trajectory
from .trajectory_perspective import PerspectiveConfig, PerspectiveTrajectory, camera_is_static


@dataclass(frozen=True)
class TPTrajectoryConfig:
    weights: str = ""            # folder with config.json + tp.safetensors; "" = models/tp
    steps: int = 10              # DDIM steps (fewer = faster)
    overlap: int = 30            # frames shared by neighbouring windows
    seed: int = 0                # the starting noise (the result is deterministic)
    samples: int = 1             # samples averaged (seeds seed, seed + 1, ...): closer to the posterior mean
    evidence: bool = True        # guide toward the perspective path where it is reliable
    static_weight: float = 0.0   # guidance strength, static camera: none (the root is kept on its viewing ray instead)
    moving_weight: float = 0.3   # guidance strength, moving camera (its motion measured and removed)
    min_support: float = 2.0     # sum of anchor weights below which a frame gives no evidence
    contact_threshold: float = 0.0  # a foot point is in contact where TP's contact output (-1..1) exceeds this


def evidence_weights(valid: np.ndarray, support: np.ndarray, min_support: float, strength: float) -> np.ndarray:
    """(T,) guidance weight per frame: ``strength`` where the person was found with enough landmark
    support, 0 elsewhere, eased over 5 frames so the hand-over to the prior is smooth."""
    ok = (valid & (support >= min_support)).astype(float)
    k = np.ones(5) / 5.0
    return strength * np.convolve(np.pad(ok, 2, mode="edge"), k, mode="valid")


@register
class TPTrajectory:
    kind, name = "trajectory", "tp"
    Config = TPTrajectoryConfig

    def __init__(self, cfg: TPTrajectoryConfig, device: str):
        from ..tp import model

        self.cfg, self.device = cfg, device
        self.net = model.load(cfg.weights or model.DEFAULT_DIR, device)
        self.perspective = PerspectiveTrajectory(PerspectiveConfig())

    @classmethod
    def from_config(cls, cfg: TPTrajectoryConfig, device: str = "cpu") -> "TPTrajectory":
        return cls(cfg, device)

    @classmethod
    def describe(cls) -> dict:
        from pathlib import Path

        d = Path(__file__).resolve().parents[2] / "models" / "tp"
        return {"weights": str(d / "tp.safetensors"), "weights_found": (d / "tp.safetensors").is_file(),
                "source": "TP trajectory prior trained on mocap (models/tp/MODEL_CARD.md)"}

    def sample(self, cond: np.ndarray, evidence: np.ndarray | None, weights: np.ndarray | None,
               report: Report) -> np.ndarray:
        """(T, 72) condition [, (T, 7) evidence and (T,) weights] -> (T, 7) target, physical units."""
        import torch

        from ..tp import diffusion as df
        from ..tp import representation as rp

        net, cfg = self.net, self.cfg
        with torch.no_grad():
            cn = net.norm_c(torch.as_tensor(cond, dtype=torch.float32, device=self.device))
            ev = None if evidence is None else net.norm_x(torch.as_tensor(evidence, dtype=torch.float32,
                                                                          device=self.device)).cpu().numpy()
            W = min(net.cfg.window, len(cond))

            def predict(xw: np.ndarray, t: int, starts: list[int]) -> np.ndarray:
                c = torch.stack([cn[s:s + W] for s in starts])
                x = torch.as_tensor(xw, dtype=torch.float32, device=self.device)
                return net(x, torch.full((len(starts),), t, device=self.device), c).cpu().numpy()

            guide = None
            if ev is not None and weights is not None:
                dims = np.r_[np.arange(rp.VEL.start, rp.VEL.stop), rp.HEIGHT.start]
                w = np.asarray(weights, np.float64)[:, None]

                def guide(x0: np.ndarray, t: int) -> np.ndarray:  # noqa: ARG001
                    x0 = x0.copy()
                    x0[:, dims] += w * (ev[:, dims] - x0[:, dims])
                    return x0

            abar = df.cosine_alphas_cumprod(net.cfg.diffusion_steps)
            n = max(1, cfg.samples)
            xn = np.mean([df.ddim_sample(predict, len(cond), net.cfg.x_dim, abar, steps=cfg.steps,
                                         window=net.cfg.window, overlap=min(cfg.overlap, net.cfg.window - 1),
                                         seed=cfg.seed + k, guide=guide,
                                         report=lambda i, m, k=k: report(k * m + i, n * m))
                          for k in range(n)], axis=0)
            return net.denorm_x(torch.as_tensor(xn, dtype=torch.float32, device=self.device)).cpu().numpy()

    def __call__(self, track, motion: BodyMotion, clip: Clip, report: Report) -> Trajectory:
        from ..tp import representation as rp

        cfg = self.cfg
        base = self.perspective(track, motion, clip, lambda i, n: report(i, n + cfg.steps * max(1, cfg.samples)))
        T = len(base.root_world)
        # body-camera -> world, per frame, from the root's two orientations
        M = np.einsum("tab,tcb->tac", base.root_orient_world, motion.rotations[:, 0])
        rel = np.einsum("tab,tjb->tja", M, motion.joints - motion.joints[:, :1])
        joints_w = base.root_world[:, None] + rel
        fps = float(clip.fps)
        n30 = max(2, int(round((T - 1) * rp.FPS / fps)) + 1) if T > 1 else 1
        j30 = rp.resample(joints_w, fps, rp.FPS, n30)
        root30 = rp.resample(base.root_world, fps, rp.FPS, n30)
        yaw = rp.heading(j30)
        cond = rp.condition(j30, yaw)
        static = base.camera_static
        evidence = weights = None
        if cfg.evidence:
            evidence = rp.target(root30, yaw, np.zeros((n30, 4), bool), rp.FPS)
            support = np.where(track.valid, motion.anchor_weights.sum(1), 0.0)
            w = evidence_weights(track.valid, support, cfg.min_support,
                                 cfg.static_weight if static else cfg.moving_weight)
            weights = rp.resample(w, fps, rp.FPS, n30)

        def step(i: int, n: int) -> None:
            report(3 + i, 3 + n)

        x = self.sample(cond, evidence, weights, step)
        path30 = rp.integrate(x, yaw, rp.FPS, root30[0])
        root_w = rp.resample(path30, rp.FPS, fps, T)
        contacts = rp.resample((x[:, rp.CONTACT] > cfg.contact_threshold).astype(np.float32), rp.FPS, fps, T) > 0.5
        from ..trajectory import keep_in_view   # static: along the viewing ray; moving: the camera follows

        root_w, E = keep_in_view(root_w, base.root_world, base.camera_extrinsics, static)
        info = dict(base.info)
        info["tp"] = {"steps": cfg.steps, "evidence": bool(cfg.evidence),
                      "evidence_weight_mean": None if weights is None else float(np.mean(weights)),
                      "contact_rate": float(contacts.mean()) if len(contacts) else 0.0}
        return Trajectory(root_world=root_w, root_orient_world=base.root_orient_world, camera_extrinsics=E,
                          camera_static=static, info=info, contacts=contacts)
