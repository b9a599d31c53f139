"""Body solve v1: fit the vm24 skeleton to BlazePose world landmarks.

Frame used here ("body-camera" frame): BlazePose world axes turned Blender-like, ``(x, z, -y)``:
x right, y away from the camera, z up; origin at the landmarks' hip centre. A person facing the
camera with identity root rotation matches the rest pose (facing -Y).

Steps (all batched over frames, torch on the chosen device):
1. bone lengths from median landmark distances (``measure_body``) scale the rest skeleton;
2. analytic initialisation: torso frames from hips and shoulders, hinge-aware limb frames (the elbow and
   knee bend about one axis, which fixes the twist of the upper limb), hands, feet and head by
   vector registration (roma);
3. refinement with Adam over a chunk of frames: visibility-weighted robust distance of skeleton points to
   landmarks, hinge and joint-limit priors, small spine/collar rotations, and temporal smoothness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import skeleton as sk
from .geometry import frames
from .geometry import rotations as rot
from .pose import LM
from .stages.body_solve import SolveConfig  # the stage's config (torch-free module), used here

# ---- landmark targets -------------------------------------------------------------------------
# (joint, landmark names averaged, rest offset in the joint's frame for a 1.70 m body, weight)
_L, _R = +1.0, -1.0


def _target_table() -> list[tuple[str, tuple[str, ...], tuple[float, float, float], float]]:
    t: list[tuple[str, tuple[str, ...], tuple[float, float, float], float]] = []
    for side, sx in (("left", _L), ("right", _R)):
        t += [
            (f"{side}_hip", (f"{side}_hip",), (0, 0, 0), 1.0),
            (f"{side}_knee", (f"{side}_knee",), (0, 0, 0), 1.0),
            (f"{side}_ankle", (f"{side}_ankle",), (0, 0, 0), 1.0),
            (f"{side}_ankle", (f"{side}_heel",), (0, 0.0, -0.05), 0.7),
            (f"{side}_ankle", (f"{side}_foot_index",), (0, -0.18, -0.06), 0.7),
            (f"{side}_shoulder", (f"{side}_shoulder",), (0, 0, 0), 1.0),
            (f"{side}_elbow", (f"{side}_elbow",), (0, 0, 0), 1.0),
            (f"{side}_wrist", (f"{side}_wrist",), (0, 0, 0), 1.0),
            (f"{side}_wrist", (f"{side}_index",), (sx * 0.09, 0, 0.02), 0.4),
            (f"{side}_wrist", (f"{side}_pinky",), (sx * 0.08, 0, -0.025), 0.4),
            (f"{side}_wrist", (f"{side}_thumb",), (sx * 0.03, -0.012, 0.01), 0.3),
            ("head", (f"{side}_ear",), (sx * 0.07, -0.01, 0.03), 0.5),
            ("head", (f"{side}_eye",), (sx * 0.02, -0.115, 0.03), 0.3),
            ("head", (f"mouth_{side}",), (sx * 0.02, -0.08, -0.03), 0.3),
        ]
    t.append(("head", ("nose",), (0.0, -0.125, -0.01), 0.5))
    return t


TARGETS = _target_table()
_T_JOINT = torch.tensor([sk.INDEX[j] for j, *_ in TARGETS])
_T_LMS = [[LM[n] for n in names] for _, names, _, _ in TARGETS]
_T_OFFSET = torch.tensor([o for *_, o, _ in TARGETS], dtype=torch.float32)
_T_WEIGHT = torch.tensor([w for *_, w in TARGETS], dtype=torch.float32)
# public views for other stages: the landmarks each target averages, and the target weights
TARGET_LANDMARKS: list[list[int]] = _T_LMS
TARGET_WEIGHT: np.ndarray = _T_WEIGHT.numpy()


to_body_camera = frames.blazepose_to_bc  # BlazePose world axes -> body-camera (geometry/frames.py)


# ---- body measurement ------------------------------------------------------------------------
@dataclass
class BodyScale:
    rest_offsets: np.ndarray  # (J, 3) metres
    target_offsets: np.ndarray  # (K, 3) metres, offsets of landmark targets in their joint frames
    height: float
    scales: dict[str, float]


def _median_len(Y: np.ndarray, vis: np.ndarray, pairs: list[tuple[str, str]]) -> float | None:
    vals = []
    for a, b in pairs:
        ia, ib = LM[a], LM[b]
        w = np.minimum(vis[:, ia], vis[:, ib])
        d = np.linalg.norm(Y[:, ia] - Y[:, ib], axis=-1)
        ok = (w > 0.6) & np.isfinite(d)
        if ok.sum() >= 3:
            vals.append(d[ok])
    if not vals:
        return None
    return float(np.median(np.concatenate(vals)))


def measure_body(Y: np.ndarray, vis: np.ndarray) -> BodyScale:
    """Scale the default skeleton to the landmarks' bone lengths (Y: (T, 33, 3) body-camera frame)."""
    mid = lambda a, b: 0.5 * (Y[:, LM[a]] + Y[:, LM[b]])  # noqa: E731

    def ratio(measured: float | None, default: float, lo=0.7, hi=1.35) -> float:
        return 1.0 if measured is None else float(np.clip(measured / default, lo, hi))

    s_thigh = ratio(_median_len(Y, vis, [("left_hip", "left_knee"), ("right_hip", "right_knee")]), 0.40)
    s_shin = ratio(_median_len(Y, vis, [("left_knee", "left_ankle"), ("right_knee", "right_ankle")]), 0.40)
    s_uarm = ratio(_median_len(Y, vis, [("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")]), 0.26)
    s_farm = ratio(_median_len(Y, vis, [("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")]), 0.25)
    s_hipw = ratio(_median_len(Y, vis, [("left_hip", "right_hip")]), 0.17)
    s_shw = ratio(_median_len(Y, vis, [("left_shoulder", "right_shoulder")]), 0.34)
    s_foot = ratio(_median_len(Y, vis, [("left_ankle", "left_foot_index"), ("right_ankle", "right_foot_index")]), 0.19)
    torso = np.linalg.norm(mid("left_shoulder", "right_shoulder") - mid("left_hip", "right_hip"), axis=-1)
    tvis = vis[:, [LM["left_shoulder"], LM["right_shoulder"], LM["left_hip"], LM["right_hip"]]].min(1)
    ok = (tvis > 0.6) & np.isfinite(torso)
    s_torso = ratio(float(np.median(torso[ok])) if ok.sum() >= 3 else None, 0.54)
    s_leg = 0.5 * (s_thigh + s_shin)
    s_arm = 0.5 * (s_uarm + s_farm)

    rest = sk.DEFAULT_REST_OFFSETS.copy()
    I = sk.INDEX
    for side in ("left", "right"):
        rest[I[f"{side}_hip"]] *= (s_hipw, 1, s_torso)
        rest[I[f"{side}_knee"]] *= s_thigh
        rest[I[f"{side}_ankle"]] *= s_shin
        rest[I[f"{side}_foot"]] *= s_foot
        rest[I[f"{side}_collar"]] *= (s_shw, 1, s_torso)
        rest[I[f"{side}_shoulder"]] *= (s_shw, 1, s_torso)
        rest[I[f"{side}_elbow"]] *= s_uarm
        rest[I[f"{side}_wrist"]] *= s_farm
        rest[I[f"{side}_hand"]] *= s_arm
    for j in ("spine1", "spine2", "spine3", "neck", "head"):
        rest[I[j]] *= s_torso
    ankle_h = 0.08 * s_leg
    rest[0] = (0.0, 0.0, -rest[I["left_hip"], 2] - rest[I["left_knee"], 2] - rest[I["left_ankle"], 2] + ankle_h)

    toff = _T_OFFSET.numpy().astype(np.float64).copy()
    for k, (joint, names, _, _) in enumerate(TARGETS):
        if joint == "head":
            toff[k] *= s_torso
        elif joint.endswith("_ankle"):
            toff[k] *= s_foot
        elif joint.endswith("_wrist"):
            toff[k] *= s_arm
    head_top = sk.rest_positions(rest)[I["head"], 2] + 0.10 * s_torso
    scales = dict(thigh=s_thigh, shin=s_shin, upper_arm=s_uarm, forearm=s_farm, hip_width=s_hipw,
                  shoulder_width=s_shw, torso=s_torso, foot=s_foot)
    return BodyScale(rest_offsets=rest, target_offsets=toff, height=float(head_top), scales=scales)


# ---- torch kinematics ------------------------------------------------------------------------
def fk_torch(R_local: torch.Tensor, root: torch.Tensor, rest: torch.Tensor):
    """R_local (T, J, 3, 3), root (T, 3), rest (J, 3) -> world rotations (T, J, 3, 3), positions (T, J, 3)."""
    Rw: list[torch.Tensor] = []
    P: list[torch.Tensor] = []
    for j, p in enumerate(sk.PARENTS):
        if p < 0:
            Rw.append(R_local[:, j])
            P.append(root)
        else:
            Rw.append(Rw[p] @ R_local[:, j])
            P.append(P[p] + Rw[p] @ rest[j])
    return torch.stack(Rw, 1), torch.stack(P, 1)


def target_points(Rw: torch.Tensor, P: torch.Tensor, toff: torch.Tensor) -> torch.Tensor:
    """Skeleton points that correspond to the landmark targets: (T, K, 3)."""
    return P[:, _T_JOINT] + torch.einsum("tkab,kb->tka", Rw[:, _T_JOINT], toff)


def _normalize(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)


def _frame(d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis with columns (d, h', d x h') from a direction and an approximate second axis."""
    d = _normalize(d)
    h = _normalize(h - (h * d).sum(-1, keepdim=True) * d)
    return torch.stack([d, h, torch.cross(d, h, dim=-1)], -1)


_shortest_arc = rot.shortest_arc


# ---- analytic initialisation -----------------------------------------------------------------
def _init_limbs(Y: torch.Tensor, vis: torch.Tensor, toff: torch.Tensor, Rw: list[torch.Tensor]) -> None:
    """Fill ``Rw`` (world rotations per joint) for the arms, legs, hands and feet: hinge-aware limb frames,
    then wrists and ankles registered to the hand and foot landmarks."""
    T = Y.shape[0]
    dev, dt = Y.device, Y.dtype
    I = sk.INDEX
    g = lambda n: Y[:, LM[n]]  # noqa: E731
    for side in ("left", "right"):
        sx = 1.0 if side == "left" else -1.0
        limbs = (
            # upper joint, lower joint, end landmark chain, rest direction, rest hinge axis
            (f"{side}_shoulder", f"{side}_elbow", (f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist"),
             (sx, 0.0, 0.0), (0.0, 0.0, -sx), Rw[I[f"{side}_collar"]]),
            (f"{side}_hip", f"{side}_knee", (f"{side}_hip", f"{side}_knee", f"{side}_ankle"),
             (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), Rw[0]),
        )
        for upper, lower, (a, b, c), d0, h0, R_par in limbs:
            d0t = torch.tensor(d0, dtype=dt, device=dev).expand(T, 3)
            h0t = torch.tensor(h0, dtype=dt, device=dev).expand(T, 3)
            d = _normalize(g(b) - g(a))
            f = _normalize(g(c) - g(b))
            swing = _shortest_arc((R_par @ d0t.unsqueeze(-1)).squeeze(-1), d)
            h_fb = (swing @ R_par @ h0t.unsqueeze(-1)).squeeze(-1)
            cr = torch.cross(d, f, dim=-1)
            wgt = ((cr.norm(dim=-1, keepdim=True) - 0.05) / 0.25).clamp(0, 1)
            h = _normalize(wgt * _normalize(cr) + (1 - wgt) * h_fb)
            B_rest = _frame(d0t, h0t)
            B_up = _frame(d, h)
            R_up = B_up @ B_rest.transpose(-1, -2)
            # the lower limb turns about the hinge only: angle from d to f around h'
            hp = B_up[..., 1]
            theta = torch.atan2((torch.cross(d, f, dim=-1) * hp).sum(-1), (d * f).sum(-1))
            R_lo = R_up @ rot.rotvec_to_matrix(h0t * theta[:, None])
            Rw[I[upper]] = R_up
            Rw[I[lower]] = R_lo
        # wrist from hand points, ankle from heel/toe (+ the knee hinge for twist)
        for joint, child, fallback in ((f"{side}_wrist", f"{side}_hand", Rw[I[f"{side}_elbow"]]),
                                       (f"{side}_ankle", f"{side}_foot", Rw[I[f"{side}_knee"]])):
            ks = [k for k, (j, *_r) in enumerate(TARGETS) if j == joint and any(o != 0 for o in TARGETS[k][2])]
            x_rest = toff[ks].expand(T, -1, -1)
            y_obs = torch.stack([Y[:, _T_LMS[k]].mean(1) for k in ks], 1) - g(joint)[:, None]
            w = torch.stack([vis[:, _T_LMS[k]].min(1).values for k in ks], 1)
            # keep the parent's frame as a weak extra pair of vectors (twist reference)
            x_rest = torch.cat([x_rest, 0.05 * torch.eye(3, dtype=dt, device=dev).expand(T, 3, 3)], 1)
            y_obs = torch.cat([y_obs, 0.05 * fallback.transpose(-1, -2)], 1)
            w = torch.cat([w, torch.full((T, 3), 0.3, dtype=dt, device=dev)], 1)
            R_j = rot.align_vectors(x_rest, y_obs, weights=w + 1e-4)
            Rw[I[joint]] = R_j
            Rw[I[child]] = R_j



def initial_pose(Y: torch.Tensor, vis: torch.Tensor, body: BodyScale) -> tuple[torch.Tensor, torch.Tensor]:
    """Y (T, 33, 3) body-camera landmarks -> local rotations (T, J, 3, 3) and root position (T, 3)."""
    T = Y.shape[0]
    dev, dt = Y.device, Y.dtype
    I = sk.INDEX
    g = lambda n: Y[:, LM[n]]  # noqa: E731
    rest = torch.as_tensor(body.rest_offsets, dtype=dt, device=dev)
    eye = torch.eye(3, dtype=dt, device=dev).expand(T, 3, 3)
    Rw = [eye.clone() for _ in range(sk.J)]

    mid_hip = 0.5 * (g("left_hip") + g("right_hip"))
    mid_sh = 0.5 * (g("left_shoulder") + g("right_shoulder"))
    up = mid_sh - mid_hip
    # frames built from (x = left-right axis, z = up): basis columns x, y = z cross x, z
    def torso_frame(x: torch.Tensor) -> torch.Tensor:
        F = _frame(up, x)  # columns (up, x', up x x')
        z, xx = F[..., 0], F[..., 1]
        return torch.stack([xx, torch.cross(z, xx, dim=-1), z], -1)

    R_pelvis = torso_frame(g("left_hip") - g("right_hip"))
    R_chest = torso_frame(g("left_shoulder") - g("right_shoulder"))
    Rw[0] = R_pelvis
    rel = rot.matrix_to_rotvec(R_pelvis.transpose(-1, -2) @ R_chest)
    step = rot.rotvec_to_matrix(rel / 3.0)
    Rw[I["spine1"]] = R_pelvis @ step
    Rw[I["spine2"]] = Rw[I["spine1"]] @ step
    Rw[I["spine3"]] = Rw[I["spine2"]] @ step
    for j in ("neck", "left_collar", "right_collar"):
        Rw[I[j]] = Rw[I["spine3"]]
    root = mid_hip - R_pelvis @ rest[I["left_hip"]] * torch.tensor([0.0, 1.0, 1.0], dtype=dt, device=dev)

    # head: register face points around the ear centre
    head_k = [k for k, (j, *_r) in enumerate(TARGETS) if j == "head"]
    toff = torch.as_tensor(body.target_offsets, dtype=dt, device=dev)
    ear_mid = 0.5 * (g("left_ear") + g("right_ear"))
    x_rest = toff[head_k].expand(T, -1, -1)
    y_obs = torch.stack([Y[:, _T_LMS[k]].mean(1) for k in head_k], 1) - ear_mid[:, None]
    w = torch.stack([vis[:, _T_LMS[k]].min(1).values for k in head_k], 1) + 1e-3
    R_head = rot.align_vectors(x_rest, y_obs, weights=w)
    half = rot.rotvec_to_matrix(0.5 * rot.matrix_to_rotvec(Rw[I["spine3"]].transpose(-1, -2) @ R_head))
    Rw[I["neck"]] = Rw[I["spine3"]] @ half
    Rw[I["head"]] = R_head

    _init_limbs(Y, vis, toff, Rw)

    R_local = torch.stack([Rw[j] if p < 0 else Rw[p].transpose(-1, -2) @ Rw[j]
                           for j, p in enumerate(sk.PARENTS)], 1)
    return R_local, root


# ---- refinement ------------------------------------------------------------------------------


_HINGE = {  # joint -> (allowed axis index, sign of flexion)
    "left_knee": (0, +1.0), "right_knee": (0, +1.0),
    "left_elbow": (2, -1.0), "right_elbow": (2, +1.0),
}


def refine(R0: torch.Tensor, root0: torch.Tensor, Y: torch.Tensor, vis: torch.Tensor, body: BodyScale,
           cfg: SolveConfig, progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine local rotations (as rotation-vector corrections) and the root over a chunk of frames."""
    T = Y.shape[0]
    dev, dt = Y.device, Y.dtype
    rest = torch.as_tensor(body.rest_offsets, dtype=dt, device=dev)
    toff = torch.as_tensor(body.target_offsets, dtype=dt, device=dev)
    tgt = torch.stack([Y[:, idx].mean(1) for idx in _T_LMS], 1)                  # (T, K, 3)
    w = torch.stack([vis[:, idx].min(1).values for idx in _T_LMS], 1) * _T_WEIGHT.to(dev, dt)  # (T, K)
    delta = torch.zeros(T, sk.J, 3, dtype=dt, device=dev, requires_grad=True)
    droot = torch.zeros(T, 3, dtype=dt, device=dev, requires_grad=True)
    opt = torch.optim.Adam([delta, droot], lr=cfg.lr)
    hinge_idx = [(sk.INDEX[n], a, s) for n, (a, s) in _HINGE.items()]
    spine_idx = [sk.INDEX[n] for n in ("spine1", "spine2", "spine3", "left_collar", "right_collar", "neck")]
    c2 = cfg.robust_scale ** 2
    for it in range(cfg.iterations):
        opt.zero_grad()
        R = R0 @ rot.rotvec_to_matrix(delta)
        Rw, P = fk_torch(R, root0 + droot, rest)
        pts = target_points(Rw, P, toff)
        d2 = ((pts - tgt) ** 2).sum(-1)
        loss = (w * d2 / (d2 + c2)).sum() / w.sum().clamp_min(1e-6)
        # hinge joints: no rotation off the hinge axis, no hyper-extension
        for j, a, s in hinge_idx:
            rv = rot.matrix_to_rotvec(R[:, j])
            off = torch.cat([rv[:, :a], rv[:, a + 1:]], -1)
            loss = loss + cfg.w_hinge * ((off ** 2).sum(-1).mean() + (torch.relu(-s * rv[:, a]) ** 2).mean())
        rv_sp = rot.matrix_to_rotvec(R[:, spine_idx])
        loss = loss + cfg.w_spine * (rv_sp ** 2).sum(-1).mean()
        if T >= 3:
            acc = P[2:] - 2 * P[1:-1] + P[:-2]
            loss = loss + cfg.w_smooth * (acc ** 2).sum(-1).mean()
        loss.backward()
        opt.step()
        if progress is not None:
            progress(it + 1, cfg.iterations)
    with torch.no_grad():
        return R0 @ rot.rotvec_to_matrix(delta), root0 + droot


def solve_body(Y_np: np.ndarray, vis_np: np.ndarray, body: BodyScale, cfg: SolveConfig | None = None,
               device: str = "cpu", progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (T, 33, 3) in the body-camera frame -> local rotations (T, J, 3, 3) and root (T, 3).

    Works in overlapping chunks so that memory does not grow with the clip length.
    """
    cfg = cfg or SolveConfig()
    T = Y_np.shape[0]
    R_out = np.zeros((T, sk.J, 3, 3), np.float32)
    root_out = np.zeros((T, 3), np.float32)
    start = 0
    while start < T:
        end = min(T, start + cfg.chunk)
        lo = max(0, start - cfg.overlap)
        Y = torch.as_tensor(Y_np[lo:end], dtype=torch.float32, device=device)
        vis = torch.as_tensor(vis_np[lo:end], dtype=torch.float32, device=device)
        R0, root0 = initial_pose(Y, vis, body)
        cb = None
        if progress is not None:
            cb = lambda i, n, s=start: progress(s + (end - s) * i // n, T)  # noqa: E731
        R, root = refine(R0, root0, Y, vis, body, cfg, progress=cb)
        keep = start - lo
        R_out[start:end] = R[keep:].cpu().numpy()
        root_out[start:end] = root[keep:].cpu().numpy()
        start = end
    return R_out, root_out
