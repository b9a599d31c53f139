"""Optional refinement after Rope: align the estimated body with BlazePose's 2D landmarks.

Rope's depth and its guesses for hidden parts are kept; what is refined is how the visible joints
project. Per chunk of frames, L-BFGS adjusts every local rotation by a small rotation vector so that the
skeleton's landmark points (``solve.TARGETS``: joint centres, plus hand, head and foot points at body-
scaled offsets), seen through the clip's pinhole camera (focal ``Clip.focal_px``; the body's camera-
frame translation per frame is optimised with the pose, starting from a weak-perspective placement),
land on BlazePose's IMAGE landmarks. Terms:

- data: Geman-McClure distance in the image plane, in metres at the body's scale, weighted by the
  landmark's visibility (landmarks with visibility under ``min_visibility`` count for nothing);
- prior: squared angle of each correction (radians), so the pose stays Rope's where the image says
  nothing (hidden parts, depth);
- optionally the v1 solve's hinge prior (knees and elbows bend about one axis, no hyper-extension;
  off by default), an acceleration penalty on the CORRECTIONS of the joints (Rope's own motion is
  not smoothed again) and on the translation, and a term keeping each joint's depth along the view.

What it does, measured (docs/rope.md): on BlazePose run on renders of training performers it brings
the projected limb joints closer to where they are in the image (median 49 -> 41 mm at the body)
but moves them in depth, so 3D pose error goes UP; it is for overlay fit, not for accuracy.

This is the v1 fit's 2D counterpart run after Rope (``--option body.refine=true``); the v1 fit itself
stays the ``solve`` body. Frames without a detection keep Rope's pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import skeleton as sk
from ..geometry import rotations as rot

REFERENCE_HEIGHT = 1.70  # m: solve.TARGETS offsets are given for this body height


@dataclass(frozen=True)
class Refine2DConfig:
    iterations: int = 30         # L-BFGS iterations per chunk (pose and translation)
    prior: float = 0.05          # weight of the squared correction angle (rad^2) against the data term
    robust_scale: float = 0.04   # m at the body's scale, Geman-McClure scale of the 2D residual
    min_visibility: float = 0.5  # landmarks below this visibility do not pull
    place_iterations: int = 20   # translation-only L-BFGS iterations before the pose moves
    w_depth: float = 20.0        # keeps each joint's depth (along the view) where Rope put it (per m^2)
    w_hinge: float = 0.0         # the v1 hinge prior; off: on training-performer renders it cost 4 mm PA-MPJPE
    w_smooth: float = 200.0      # acceleration penalty on the joints' corrections and the translation
    chunk: int = 256
    overlap: int = 16


def _place(pts: np.ndarray, uv: np.ndarray, w: np.ndarray, focal: float, centre: np.ndarray) -> np.ndarray:
    """Initial camera-frame translation (T, 3) of hip-centred body points (T, K, 3; OpenCV axes) so that
    they project onto the image points uv (T, K, 2; pixels): depth from a weak-perspective scale fit,
    then x, y from the weighted centroids. Frames with no weight get the median translation."""
    ws = w.sum(1, keepdims=True)
    ok = ws[:, 0] > 0
    ws = np.maximum(ws, 1e-6)
    xm = (w[..., None] * pts[..., :2]).sum(1) / ws
    um = (w[..., None] * uv).sum(1) / ws
    xc, uc = pts[..., :2] - xm[:, None], uv - um[:, None]
    s = (w * (xc * uc).sum(-1)).sum(1) / np.maximum((w * (xc ** 2).sum(-1)).sum(1), 1e-9)   # px per m
    z = focal / np.clip(s, 1e-3, None)
    tau = np.concatenate([(um - centre) * z[:, None] / focal - xm, z[:, None]], 1)
    if ok.any():
        tau[~ok] = np.median(tau[ok], 0)
        tau[:, 2] = np.clip(tau[:, 2], 0.5, None)
    else:
        tau[:] = (0.0, 0.0, 5.0)
    return tau.astype(np.float32)


def _refine_chunk(Rc: torch.Tensor, rc: torch.Tensor, rest_t: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor,
                  tau0: torch.Tensor, toff: torch.Tensor, focal: float, centre: np.ndarray,
                  cfg: Refine2DConfig) -> np.ndarray:
    """One chunk: Rope's rotations Rc (t, 24, 3, 3), root rc (t, 3), image targets tgt (t, K, 2) px with
    weights w (t, K), initial camera-frame translation tau0 (t, 3) -> refined rotations (numpy)."""
    from .. import solve
    from ..geometry.frames import BC_TO_CV

    device = Rc.device
    bc_to_cv = torch.as_tensor(BC_TO_CV, dtype=torch.float32, device=device)
    hinge = [(sk.INDEX[n], a, s) for n, (a, s) in solve._HINGE.items()]
    c2 = cfg.robust_scale ** 2
    delta = torch.zeros(len(Rc), sk.J, 3, device=device, requires_grad=True)
    dtau = torch.zeros(len(Rc), 3, device=device, requires_grad=True)
    frame_w = (w.sum(1) > 0).float()
    with torch.no_grad():
        P0 = solve.fk_torch(Rc, rc, rest_t)[1]                                   # Rope's joints
        depth0 = P0[..., 1]                                                       # (t, J) along the view

    def objective() -> torch.Tensor:
        R = Rc @ rot.rotvec_to_matrix(delta)
        Rw, P = solve.fk_torch(R, rc, rest_t)
        X = solve.target_points(Rw, P, toff) @ bc_to_cv.T + (tau0 + dtau)[:, None]  # camera frame
        z = X[..., 2].clamp_min(0.1)
        proj = focal * X[..., :2] / z[..., None] + torch.as_tensor(centre, device=device)
        res = (proj - tgt) * (z.detach() / focal)[..., None]                       # metres at the body
        d2 = (res ** 2).sum(-1)
        loss = (w * d2 / (d2 + c2)).sum() / w.sum().clamp_min(1e-6)
        loss = loss + cfg.prior * ((delta ** 2).sum(-1).mean(1) * frame_w).sum() / frame_w.sum().clamp_min(1.0)
        loss = loss + cfg.w_depth * ((P[..., 1] - depth0) ** 2).mean()
        for j, a, sg in hinge if cfg.w_hinge > 0 else ():
            rv = rot.matrix_to_rotvec(R[:, j])
            off = torch.cat([rv[:, :a], rv[:, a + 1:]], -1)
            loss = loss + cfg.w_hinge * ((off ** 2).sum(-1).mean() + (torch.relu(-sg * rv[:, a]) ** 2).mean())
        if len(P) >= 3:
            dP = P - P0                                                           # the corrections
            loss = loss + cfg.w_smooth * ((dP[2:] - 2 * dP[1:-1] + dP[:-2]) ** 2).sum(-1).mean()
            tt = tau0 + dtau
            loss = loss + cfg.w_smooth * ((tt[2:] - 2 * tt[1:-1] + tt[:-2]) ** 2).sum(-1).mean()
        return loss

    # L-BFGS, not Adam: Adam takes full-size steps on vanishing gradients, so parts with no evidence
    # (hidden joints) would drift; here a zero gradient means no change.
    for params, iters in (([dtau], cfg.place_iterations), ([delta, dtau], cfg.iterations)):
        if iters <= 0:
            continue
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, history_size=10, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
    with torch.no_grad():
        return (Rc @ rot.rotvec_to_matrix(delta)).cpu().numpy()


def refine_2d(R0: np.ndarray, root: np.ndarray, rest: np.ndarray, image: np.ndarray, visibility: np.ndarray,
              valid: np.ndarray, image_size, cfg: Refine2DConfig | None = None, *, focal_px: float | None = None,
              height: float = REFERENCE_HEIGHT, device: str = "cpu", report=None) -> np.ndarray:
    """Rope's local rotations (T, 24, 3, 3; root in the body-camera frame), root (T, 3) and rest offsets
    (24, 3), BlazePose image landmarks (T, 33, >=2; x, y normalised to the image) with visibility (T, 33)
    -> refined local rotations (T, 24, 3, 3). ``image_size``: (width, height) pixels; ``focal_px``: the
    camera's focal length in pixels (default: the engine's default for that size)."""
    from .. import solve
    from ..geometry.frames import BC_TO_CV
    from ..trajectory import default_focal

    cfg = cfg or Refine2DConfig()
    T = len(R0)
    out = np.asarray(R0, np.float32).copy()
    valid = np.asarray(valid, bool)
    if T == 0 or not valid.any():
        return out
    W, H = float(image_size[0]), float(image_size[1])
    focal = float(focal_px or default_focal(int(W), int(H)))
    centre = np.array([W / 2.0, H / 2.0], np.float32)
    uv = np.nan_to_num(np.asarray(image, np.float32)[..., :2] * np.array([W, H], np.float32))
    vis = np.where(valid[:, None], np.nan_to_num(np.asarray(visibility, np.float32)), 0.0)
    tgt_np = np.stack([uv[:, idx].mean(1) for idx in solve._T_LMS], 1)                      # (T, K, 2) px
    w_np = np.stack([vis[:, idx].min(1) for idx in solve._T_LMS], 1)                        # (T, K)
    w_np = (np.where(w_np >= cfg.min_visibility, w_np, 0.0) * solve._T_WEIGHT.numpy()[None]).astype(np.float32)
    toff = (solve._T_OFFSET * (height / REFERENCE_HEIGHT)).to(device)
    rest_t = torch.as_tensor(np.asarray(rest, np.float32), device=device)
    bc_to_cv = torch.as_tensor(BC_TO_CV, dtype=torch.float32)
    with torch.no_grad():
        Rw, P = solve.fk_torch(torch.as_tensor(out), torch.as_tensor(np.asarray(root, np.float32)), rest_t.cpu())
        pts0 = (solve.target_points(Rw, P, toff.cpu()) @ bc_to_cv.T).numpy()
    tau_all = _place(pts0, tgt_np, w_np, focal, centre)
    step = max(1, cfg.chunk - cfg.overlap)
    starts = list(range(0, T, step))
    for n_done, start in enumerate(starts):
        lo, hi = max(0, start - cfg.overlap // 2), min(T, start + step + cfg.overlap // 2)
        R = _refine_chunk(torch.as_tensor(out[lo:hi].copy(), device=device),
                          torch.as_tensor(np.asarray(root[lo:hi], np.float32), device=device), rest_t,
                          torch.as_tensor(tgt_np[lo:hi], device=device), torch.as_tensor(w_np[lo:hi], device=device),
                          torch.as_tensor(tau_all[lo:hi], device=device), toff, focal, centre, cfg)
        a, b = start - lo, min(hi, start + step) - lo
        keep = np.arange(a, b)
        keep = keep[valid[lo + keep]]
        out[lo + keep] = R[keep]
        if report is not None:
            report(n_done + 1, len(starts))
    return out
