"""Train Rope (engine/rope) on mocap with synthetic BlazePose observations (docs/rope.md).

    nohup nice -n 10 .venv/bin/python -m scripts.train_rope --run .cache/rope_run [--minutes 60] &

Resumable: the run folder keeps ``checkpoint.pt`` (model, optimiser, step; loaded with
``weights_only=True``), ``best/`` (config.json + rope.safetensors, picked on the VALIDATION performers'
synthetic observations, never on the dev set) and ``train.log``. Run the same command again to go on.

Data: ``make_training_data`` outputs (``--data``; /work/main/.cache/training, else .cache/training).
Each step draws windows of ``cfg.window`` frames from a pool of synthetic observations
(``scripts.vmkit.mocap.synth_landmarks.synthesize``: random static cameras, BlazePose-like noise, bias,
dropout, occluders, truncation; ``--calibration`` JSON from ``scripts.calibrate_rope_noise`` sets the
landmark offsets and noise levels measured on BlazePose run on renders) and augments them on the fly:
mirror, whole-part occlusion (low visibility + large noise), truncation at the bottom of the body,
dropped frames. One camera set of the pool is redrawn every ``--refresh`` steps (camera-view
augmentation). Split by performer (VAL_SUBJECTS are never trained on).

``--pairs`` adds BlazePose-on-render pairs (``scripts.make_detector_data``): each step also draws
``--pair-batch`` windows of the REAL detector's landmarks (mirror and light occlusion augmentation) with
the rendered body's joints as targets; the renders keep positions only, so these count through the
pelvis-relative joints (FK with the predicted rotations and skeleton) and bone lengths
(``pair_losses``). ``--pair-val-subjects`` keeps some performers' pairs out of training and picks the
checkpoint on their MPJPE. ``--init`` starts a new run from shipped weights (fine-tuning).

Losses: geodesic distance of the 24 local rotations (root in the body-camera frame), 3D joints through
FK (root-relative; with the true and the predicted skeleton), root position, 2D reprojection (metric
error in the image plane at the hip depth) and rest offsets (shape).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from engine import skeleton as sk
from engine.geometry import rotations as rot
from engine.rope import RopeConfig, RopeNet, landmark_features, save_weights
from engine.rope import hierarchy as hi
from engine.geometry.frames import BC_TO_CV as M_BC_TO_CV
from scripts.vmkit import metrics
from scripts.vmkit.mocap import synth_landmarks as sl

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("train_rope")
M_CV_TO_BC = M_BC_TO_CV.T
MIRROR_J = torch.as_tensor(sk.MIRROR)
MIRROR_L = torch.as_tensor(hi.LANDMARK_MIRROR)
FLIP_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
FULCO_LM = torch.as_tensor(hi.membership(hi.FULCO)) > 0                      # (6, 33)
HIP_LM = [sl.LANDMARK_NAMES.index("left_hip"), sl.LANDMARK_NAMES.index("right_hip")]


def default_data_dir() -> Path:
    main = Path("/work/main/.cache/training")
    return main if (main / "motion_train.npz").exists() else ROOT / ".cache" / "training"


# ---- data --------------------------------------------------------------------------------------
class Motion:
    """motion_{split}.npz as arrays (local and world rotation matrices, joints, per-frame rest)."""

    def __init__(self, path: Path):
        d = np.load(path, allow_pickle=False)
        self.clip_start = d["clip_start"].astype(np.int64)
        self.clip_length = d["clip_length"].astype(np.int64)
        self.clip_subject = d["clip_subject"]
        q = torch.as_tensor(d["rotations"].astype(np.float32))
        self.R_local = rot.quat_wxyz_to_matrix(q / q.norm(dim=-1, keepdim=True)).numpy()   # (N, 24, 3, 3)
        self.root = d["root_translation"].astype(np.float32)                            # (N, 3)
        self.rest_clip = d["rest_offsets"].astype(np.float32)                           # (C, 24, 3)
        self.N = len(self.root)
        self.clip_of = np.repeat(np.arange(len(self.clip_start)), self.clip_length)     # (N,)
        self.R_world = np.zeros_like(self.R_local)
        self.joints = np.zeros((self.N, sk.J, 3), np.float32)
        for c, (a, n) in enumerate(zip(self.clip_start, self.clip_length)):
            Rw, P = sk.forward_kinematics(self.R_local[a:a + n], self.root[a:a + n], self.rest_clip[c])
            self.R_world[a:a + n], self.joints[a:a + n] = Rw, P


def load_calibration(path: Path | None) -> dict:
    if path is None:
        return {}
    cal = json.loads(Path(path).read_text())
    log.info("calibration %s: %s", path, cal)
    return cal


def _slow(rng: np.random.Generator, shape: tuple[int, ...], frames: float = 5.0) -> np.ndarray:
    """Unit-variance noise correlated over about ``frames`` frames along axis 0 (BlazePose's errors drift;
    its own filter keeps them from being white)."""
    from scipy.ndimage import gaussian_filter1d

    x = gaussian_filter1d(rng.normal(size=shape), frames, axis=0, mode="nearest") if shape[0] > 1 else rng.normal(size=shape)
    return x / max(float(x.std()), 1e-6)


def calibrated_corruption(o: dict[str, np.ndarray], rng: np.random.Generator, cal: dict) -> None:
    """Extra corruption (in place) on ``synthesize`` output so that its errors match what
    ``scripts.calibrate_rope_noise`` measured on the real detector: world error per axis, a rotation of
    the world axes against the camera's, image error with heavy tails, and hidden landmarks that keep a
    high visibility."""
    from scipy.spatial.transform import Rotation

    img, wld, vis = o["image"].astype(np.float64), o["world"].astype(np.float64), o["visibility"]
    T = len(img)
    W, H = (float(v) for v in o["image_size"])
    # world axes turned against the camera: per clip + slowly varying
    ang = np.radians(cal.get("world_rotation_deg_median", 0.0))
    rv = rng.normal(size=(1, 3)) * ang / np.sqrt(3) + _slow(rng, (T, 3), 8.0) * 0.5 * ang / np.sqrt(3)
    wld = np.einsum("tab,tlb->tla", Rotation.from_rotvec(rv).as_matrix(), wld)
    # world noise up to the measured RMS per axis (synthesize already has ~2.8 / 2.8 / 5.6 cm)
    rms = np.asarray(cal.get("world_rms_xyz", [0.028, 0.028, 0.056]))
    add = np.sqrt(np.maximum(rms ** 2 - np.array([0.028, 0.028, 0.056]) ** 2, 0.0))
    wld = wld + rng.normal(size=(1, 33, 3)) * add * np.sqrt(0.6) + _slow(rng, (T, 33, 3)) * add * np.sqrt(0.4)
    wld = wld - wld[:, HIP_LM].mean(1, keepdims=True)      # BlazePose's world origin is its own hip midpoint
    # image noise up to the measured median (px per 400 px of body diagonal; synthesize has ~3.4)
    med = cal.get("image_px400_visible_median", 3.4)
    sig = np.sqrt(max(med ** 2 - 3.4 ** 2, 0.0)) / 1.18 / 400.0
    uv = img[..., :2] * (W, H)
    diag = np.nan_to_num(np.linalg.norm(np.nanmax(uv, 1) - np.nanmin(uv, 1), axis=-1), nan=300.0)[:, None, None]
    tail = (rng.random((1, 33, 1)) < 0.1) * rng.normal(size=(1, 33, 2)) * 25.0 / 400.0
    d_uv = (rng.normal(size=(1, 33, 2)) * sig * np.sqrt(0.5) + _slow(rng, (T, 33, 2)) * sig * np.sqrt(0.5) + tail) * diag
    img[..., :2] = (uv + d_uv) / (W, H)
    # hidden landmarks: the real detector mostly still reports them as visible
    p_high = cal.get("occluded_visibility_above_half", 0.0) or 0.0
    low = vis < 0.41
    flip = low & (rng.random(vis.shape) < p_high) & o["detected"][:, None]
    vis = np.where(flip, rng.uniform(0.5, 0.95, vis.shape), vis)
    o["image"], o["world"], o["visibility"] = img.astype(np.float32), wld.astype(np.float32), vis.astype(np.float32)


def calibrated_offsets(cal: dict) -> np.ndarray | None:
    """Landmark offsets with BlazePose's hip points where the calibration measured them (in the hip
    joints' frames; the thigh turns them a little, which the hip offset of synth_landmarks also does)."""
    if "hip_offset_pelvis_frame" not in cal:
        return None
    off = sl.LANDMARK_OFFSET.copy()
    h = np.asarray(cal["hip_offset_pelvis_frame"])
    off[sl.LANDMARK_NAMES.index("left_hip")] = h
    off[sl.LANDMARK_NAMES.index("right_hip")] = h * (-1.0, 1.0, 1.0)
    return off


def build_pool(m: Motion, copies: int, rng: np.random.Generator, cal: dict) -> dict[str, np.ndarray]:
    """Synthetic observations of every clip from ``copies`` random cameras, with the targets."""
    kw = {k: cal[k] for k in ("noise_2d_px", "noise_world", "dropout", "occluder_prob") if k in cal}
    offset = calibrated_offsets(cal)
    keys = ("image", "world", "vis", "valid", "size", "root_R", "root_bc", "hip_cam", "frame")
    out: dict[str, list] = {k: [] for k in keys}
    for _ in range(copies):
        for c, (a, n) in enumerate(zip(m.clip_start, m.clip_length)):
            J, Rw = m.joints[a:a + n].astype(np.float64), m.R_world[a:a + n].astype(np.float64)
            o = sl.synthesize(J, Rw, rng, landmark_offset=offset, **kw)
            if cal:
                calibrated_corruption(o, rng, cal)
            E = o["world_to_cam"]
            R_wc, t_wc = E[:3, :3], E[:3, 3]
            G = M_CV_TO_BC @ R_wc                                                # world -> body-camera
            lm = sl.landmarks_from_joints(J, Rw, offset)                          # clean landmarks (T, 33, 3)
            hip_w = lm[:, HIP_LM].mean(1)                                         # (T, 3)
            out["image"].append(o["image"])
            out["world"].append(o["world"])
            out["vis"].append(o["visibility"])
            out["valid"].append(o["detected"])
            out["size"].append(np.repeat(np.asarray(o["image_size"], np.float32)[None], n, 0))
            out["root_R"].append(np.einsum("ab,tbc->tac", G, Rw[:, 0]).astype(np.float32))
            out["root_bc"].append(((J[:, 0] - hip_w) @ G.T).astype(np.float32))
            out["hip_cam"].append((hip_w @ R_wc.T + t_wc).astype(np.float32))
            out["frame"].append(np.arange(a, a + n))
    pool = {k: np.concatenate(v) for k, v in out.items()}
    pool["image"] = np.nan_to_num(pool["image"]).astype(np.float32)
    pool["world"] = np.nan_to_num(pool["world"]).astype(np.float32)
    return {k: torch.as_tensor(v) for k, v in pool.items()}


class Sampler:
    def __init__(self, m: Motion, window: int, copies: int, seed: int, cal: dict):
        self.m, self.window, self.copies, self.cal = m, window, copies, cal
        self.rng = np.random.default_rng(seed)
        self.pools = [build_pool(m, 1, self.rng, cal) for _ in range(copies)]
        self.R_local = torch.as_tensor(m.R_local)
        self.rest = torch.as_tensor(m.rest_clip)
        self.clip_of = torch.as_tensor(m.clip_of)
        self.start = torch.as_tensor(m.clip_start)
        self.end = torch.as_tensor(m.clip_start + m.clip_length - 1)
        self._next = 0

    def refresh(self) -> None:
        """Redraw the cameras and noise of one pool copy (camera-view augmentation)."""
        self.pools[self._next] = build_pool(self.m, 1, self.rng, self.cal)
        self._next = (self._next + 1) % self.copies

    def batch(self, B: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        k = int(torch.randint(self.copies, (1,), generator=gen))
        pool = self.pools[k]
        f = torch.randint(self.m.N, (B,), generator=gen)                          # centre frames (motion index)
        return self.gather(pool, f)

    def gather(self, pool: dict[str, torch.Tensor], f: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.window // 2
        c = self.clip_of[f]
        wi = (f[:, None] + torch.arange(-h, h + 1)[None]).clamp(self.start[c][:, None], self.end[c][:, None])  # (B, W)
        R = self.R_local[f].clone()                                               # (B, 24, 3, 3)
        R[:, 0] = pool["root_R"][f]
        return {"image": pool["image"][wi], "world": pool["world"][wi], "vis": pool["vis"][wi],
                "valid": pool["valid"][wi], "size": pool["size"][f], "R": R, "root": pool["root_bc"][f],
                "hip_cam": pool["hip_cam"][f], "rest": self.rest[c]}


class DetectorPairs:
    """BlazePose run on renders (``scripts.make_detector_data``): windows of the REAL detector's landmarks
    with the rendered anny body's joints as targets. The renders keep joint positions only (no local
    rotations), so these samples teach through positions (``pair_losses``); the synthetic pool keeps the
    rotations honest. ``subjects`` keeps only those performers' clips (None: all), ``exclude`` drops some
    (the held-out performers used for picking the checkpoint)."""

    def __init__(self, path: Path, window: int, *, subjects=None, exclude=()):
        d = np.load(path, allow_pickle=False)
        subj = d["clip_subject"].astype(str)
        keep = [c for c in range(len(subj)) if (subjects is None or subj[c] in subjects) and subj[c] not in exclude]
        assert keep, f"{path}: no clips left (subjects {subjects}, exclude {exclude})"
        starts, lengths = d["clip_start"][keep], d["clip_length"][keep]
        idx = np.concatenate([np.arange(a, a + n) for a, n in zip(starts, lengths)])
        self.subjects = sorted({subj[c] for c in keep})
        self.window = window
        self.N = len(idx)
        self.clip_of = torch.as_tensor(np.repeat(np.arange(len(keep)), lengths))
        cs = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.start, self.end = torch.as_tensor(cs), torch.as_tensor(cs + lengths - 1)
        self.image = torch.as_tensor(np.nan_to_num(d["landmarks_image"][idx]).astype(np.float32))
        self.world = torch.as_tensor(np.nan_to_num(d["landmarks_world"][idx]).astype(np.float32))
        self.vis = torch.as_tensor(d["visibility"][idx].astype(np.float32))
        self.valid = torch.as_tensor(d["valid"][idx])
        self.size = torch.as_tensor(np.repeat(d["image_size"][keep], lengths, 0).astype(np.float32))
        jc = d["joints_camera"][idx].astype(np.float64)                                  # OpenCV camera axes
        self.J = torch.as_tensor((jc @ M_CV_TO_BC.T).astype(np.float32))                 # body-camera axes
        par = np.asarray([max(p, 0) for p in sk.PARENTS])
        bones = np.linalg.norm(jc - jc[:, par], axis=-1)                                 # (N, 24), root 0
        clip_bones = np.stack([np.median(bones[self.clip_of.numpy() == c], 0) for c in range(len(keep))])
        self.bones = torch.as_tensor(clip_bones[self.clip_of.numpy()].astype(np.float32))
        self.occluded = torch.as_tensor(d["occluded"][idx] | d["self_occluded"][idx])

    def batch(self, B: int, gen: torch.Generator | None = None, f: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if f is None:
            f = torch.randint(self.N, (B,), generator=gen)
        h = self.window // 2
        c = self.clip_of[f]
        wi = (f[:, None] + torch.arange(-h, h + 1)[None]).clamp(self.start[c][:, None], self.end[c][:, None])
        return {"image": self.image[wi], "world": self.world[wi], "vis": self.vis[wi], "valid": self.valid[wi],
                "size": self.size[f], "J": self.J[f], "bones": self.bones[f]}


# ---- augmentation ------------------------------------------------------------------------------
def augment(b: dict[str, torch.Tensor], gen: torch.Generator, p_mirror=0.5, p_part=0.35, p_trunc=0.1,
            p_drop=0.05, p_vis_high=0.0) -> dict[str, torch.Tensor]:
    b = dict(b)
    B, W = b["valid"].shape
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    n = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    # mirror (camera x -> -x): landmarks swap sides, rotations conjugate by diag(-1, 1, 1)
    m = u(B) < p_mirror
    if m.any():
        img, wld, vis = b["image"][m][:, :, MIRROR_L], b["world"][m][:, :, MIRROR_L], b["vis"][m][:, :, MIRROR_L]
        img[..., 0] = 1.0 - img[..., 0]
        wld[..., 0] = -wld[..., 0]
        b["image"], b["world"], b["vis"] = b["image"].clone(), b["world"].clone(), b["vis"].clone()
        b["image"][m], b["world"][m], b["vis"][m] = img, wld, vis
        if "R" in b:
            R = b["R"].clone()
            R[m] = FLIP_X @ b["R"][m][:, MIRROR_J] @ FLIP_X
            b["R"] = R
        for key in ("root", "hip_cam"):
            if key in b:
                v = b[key].clone()
                v[m, 0] = -v[m, 0]
                b[key] = v
        for key in ("rest", "J"):                                                # per-joint vectors
            if key in b:
                v = b[key].clone()
                v[m] = b[key][m][:, MIRROR_J] * torch.tensor([-1.0, 1.0, 1.0])
                b[key] = v
        if "bones" in b:
            v = b["bones"].clone()
            v[m] = b["bones"][m][:, MIRROR_J]
            b["bones"] = v
    img, wld, vis, valid = b["image"].clone(), b["world"].clone(), b["vis"].clone(), b["valid"].clone()
    ext = (img[:, W // 2, :, :2].amax(1) - img[:, W // 2, :, :2].amin(1)).amax(-1).clamp(0.05, 1.0)  # (B,)
    # whole-part occlusion for the window: one FulCo segment (arm, leg, torso, head) hidden
    hide = torch.zeros(B, 33, dtype=torch.bool)
    sel = u(B) < p_part
    part = torch.randint(len(hi.FULCO), (B,), generator=gen)
    hide[sel] = FULCO_LM[part[sel]]
    # truncation: landmarks below a random line through the lower body
    tr = u(B) < p_trunc
    ycut = img[:, W // 2, 23:25, 1].mean(-1) + u(B) * 0.5 * ext                     # between hips and feet
    hide |= tr[:, None] & (img[:, W // 2, :, 1] > ycut[:, None])
    hw = hide[:, None].expand(B, W, 33)
    big = (0.25 * ext)[:, None, None, None]
    img[..., :2] = torch.where(hw[..., None], img[..., :2] + n(B, 1, 33, 2) * big + n(B, W, 33, 2) * 0.3 * big,
                               img[..., :2])
    wld = torch.where(hw[..., None], wld + n(B, 1, 33, 3) * 0.12 + n(B, W, 33, 3) * 0.04, wld)
    high = (u(B, 1, 33) < p_vis_high).expand(B, W, 33)
    vis = torch.where(hw, torch.where(high, 0.5 + 0.45 * u(B, W, 33), 0.3 * u(B, W, 33)), vis)
    # dropped frames (no detection) in the window, rarely the centre one
    drop = u(B, W) < p_drop
    valid = valid & ~drop
    b.update(image=img, world=wld, vis=vis, valid=valid)
    return b


# ---- losses ------------------------------------------------------------------------------------
def fk(R: torch.Tensor, root: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Batched FK with a per-sample skeleton: R (B, 24, 3, 3), root (B, 3), rest (B, 24, 3) -> (B, 24, 3)."""
    Rw: list[torch.Tensor] = []
    P: list[torch.Tensor] = []
    for j, p in enumerate(sk.PARENTS):
        if p < 0:
            Rw.append(R[:, j])
            P.append(root)
        else:
            Rw.append(Rw[p] @ R[:, j])
            P.append(P[p] + (Rw[p] @ rest[:, j, :, None])[..., 0])
    return torch.stack(P, 1)


def geodesic(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle (radians) between rotations, as roma's ``rotmat_geodesic_distance`` (|R2 - R1|_F =
    2 sqrt(2) sin(a / 2)) with finite gradients at 0 and at 180 degrees."""
    d = (((R2 - R1) ** 2).sum((-1, -2)) + 1e-10).sqrt() / (2.0 * 2.0 ** 0.5)
    return 2.0 * torch.asin(d.clamp_max(0.9999))


WEIGHTS = {"rot": 1.0, "j3d": 5.0, "j3d_shape": 2.0, "root": 5.0, "j2d": 5.0, "shape": 10.0}


def losses(net: RopeNet, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float], dict]:
    lm, glob, vis_c = landmark_features(b["image"], b["world"], b["vis"], b["valid"], b["size"])
    out = net(lm, glob, vis_c)
    R = rot.rot6d_cols_to_matrix(out["rot6d"])                                      # (B, 24, 3, 3)
    L: dict[str, torch.Tensor] = {}
    L["rot"] = geodesic(R, b["R"]).mean()
    Pg = fk(b["R"], b["root"], b["rest"])                                          # (B, 24, 3) body-camera
    Pp = fk(R, out["root"], b["rest"])
    Ps = fk(R, out["root"], out["rest"])
    rel = lambda P: P - P[:, :1]  # noqa: E731
    L["j3d"] = (rel(Pp) - rel(Pg)).norm(dim=-1).mean()
    L["j3d_shape"] = (rel(Ps) - rel(Pg)).norm(dim=-1).mean()
    L["root"] = (out["root"] - b["root"]).norm(dim=-1).mean()
    M = torch.as_tensor(M_BC_TO_CV, dtype=torch.float32)
    cg = Pg @ M.T + b["hip_cam"][:, None]                                          # (B, 24, 3) camera
    cp = Pp @ M.T + b["hip_cam"][:, None]
    zh = b["hip_cam"][:, 2:3].clamp_min(0.3)
    uv = lambda c: c[..., :2] / c[..., 2:3].clamp_min(0.1)  # noqa: E731
    L["j2d"] = ((uv(cp) - uv(cg)) * zh[:, None]).norm(dim=-1).clamp_max(1.0).mean()
    L["shape"] = (out["rest"] - b["rest"]).abs().mean()
    total = sum(WEIGHTS[k] * v for k, v in L.items())
    return total, {k: float(v.detach()) for k, v in L.items()}, {"R": R, "Pp": Pp, "Pg": Pg}


PAIR_WEIGHTS = {"pair_j3d": 7.0, "pair_bone": 10.0}


def pair_losses(net: RopeNet, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float], dict]:
    """Losses on BlazePose-on-render pairs (positions only): the pelvis-relative joints through FK with
    the predicted rotations and skeleton against the rendered body's, and the predicted bone lengths."""
    lm, glob, vis_c = landmark_features(b["image"], b["world"], b["vis"], b["valid"], b["size"])
    out = net(lm, glob, vis_c)
    R = rot.rot6d_cols_to_matrix(out["rot6d"])
    Ps = fk(R, torch.zeros_like(out["root"]), out["rest"])
    Pg = b["J"] - b["J"][:, :1]
    L = {"pair_j3d": (Ps - Pg).norm(dim=-1).mean(),
         "pair_bone": (out["rest"][:, 1:].norm(dim=-1) - b["bones"][:, 1:]).abs().mean()}
    total = sum(PAIR_WEIGHTS[k] * v for k, v in L.items())
    return total, {k: float(v.detach()) for k, v in L.items()}, {"Pp": Ps, "Pg": Pg}


@torch.no_grad()
def validate_pairs(net: RopeNet, pairs: DetectorPairs, chunk: int = 512) -> dict[str, float]:
    """MPJPE / PA-MPJPE (mm, pelvis-relative, camera axes) on every detected frame of ``pairs``."""
    net.eval()
    f_all = torch.nonzero(pairs.valid).flatten()
    mp, pa = [], []
    for a in range(0, len(f_all), chunk):
        _, _, o = pair_losses(net, pairs.batch(0, f=f_all[a:a + chunk]))
        Pp, Pg = o["Pp"].numpy().astype(np.float64), o["Pg"].numpy().astype(np.float64)
        mp.append(np.linalg.norm(Pp - Pg, axis=-1).mean(-1) * 1000)
        s_, Rr, t = metrics.similarity_transform(Pp, Pg)
        pa.append(np.linalg.norm(metrics.apply_similarity(s_, Rr, t, Pp) - Pg, axis=-1).mean(-1) * 1000)
    net.train()
    return {"pair_mpjpe": float(np.concatenate(mp).mean()), "pair_pa_mpjpe": float(np.concatenate(pa).mean())}


@torch.no_grad()
def validate(net: RopeNet, batches: list[dict]) -> dict[str, float]:
    net.eval()
    mp, pa, geo = [], [], []
    for b in batches:
        _, parts, o = losses(net, b)
        Pp, Pg = o["Pp"].numpy().astype(np.float64), o["Pg"].numpy().astype(np.float64)
        mp.append(metrics.mpjpe_per_frame(Pp, Pg, 0))
        s, Rr, t = metrics.similarity_transform(Pp, Pg)
        pa.append(np.linalg.norm(metrics.apply_similarity(s, Rr, t, Pp) - Pg, axis=-1).mean(-1) * 1000)
        geo.append(parts["rot"])
    net.train()
    return {"mpjpe": float(np.concatenate(mp).mean()), "pa_mpjpe": float(np.concatenate(pa).mean()),
            "geodesic_deg": float(np.degrees(np.mean(geo)))}


# ---- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="make_training_data output folder")
    ap.add_argument("--run", type=Path, default=ROOT / ".cache" / "rope_run")
    ap.add_argument("--minutes", type=float, default=60.0, help="stop after this much training (this call)")
    ap.add_argument("--max-steps", type=int, default=10 ** 9)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--decay-steps", type=int, default=30000, help="cosine decay length (steps)")
    ap.add_argument("--copies", type=int, default=3, help="camera sets in the observation pool")
    ap.add_argument("--refresh", type=int, default=2000, help="redraw one camera set every N steps")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--checkpoint-minutes", type=float, default=4.0)
    ap.add_argument("--calibration", type=Path, default=None, help="noise calibration JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reset-best", action="store_true", help="on resume, forget the best validation score "
                    "(after a change of the data or features)")
    ap.add_argument("--config", default="{}", help="RopeConfig overrides as JSON, e.g. '{\"window\": 1}'")
    ap.add_argument("--limit-clips", type=int, default=None, help="quick runs: only the first N clips")
    ap.add_argument("--pairs", type=Path, default=None,
                    help="make_detector_data npz: train on BlazePose-on-render pairs too (positions only)")
    ap.add_argument("--pair-batch", type=int, default=32)
    ap.add_argument("--pair-val-subjects", default="",
                    help="comma-separated performers of --pairs kept out of training; the checkpoint is "
                         "then picked on their pairs' MPJPE")
    ap.add_argument("--init", type=Path, default=None,
                    help="start a NEW run from these weights (config.json + rope.safetensors)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    args.run.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.FileHandler(args.run / "train.log"), logging.StreamHandler(sys.stderr)])
    data = args.data or default_data_dir()
    ckpt_path = args.run / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=True) if ckpt_path.exists() else None
    cfg = RopeConfig.from_json(ckpt["config_json"]) if ckpt else RopeConfig(**json.loads(args.config))
    cal = load_calibration(args.calibration)
    step = int(ckpt["step"]) if ckpt else 0
    torch.manual_seed(args.seed + step)
    gen = torch.Generator().manual_seed(args.seed * 1000003 + step)
    t0 = time.time()
    train_m = Motion(data / "motion_train.npz")
    val_m = Motion(data / "motion_val.npz")
    assert not set(map(str, train_m.clip_subject)) & {"cmu_07", "cmu_09", "cmu_16", "cmu_94", "hdm05_mm", "hdm05_tr"}
    if args.limit_clips:
        for m in (train_m, val_m):
            n = int(m.clip_length[:args.limit_clips].sum())
            m.clip_start, m.clip_length = m.clip_start[:args.limit_clips], m.clip_length[:args.limit_clips]
            m.N = n
            m.clip_of = m.clip_of[:n]
    sampler = Sampler(train_m, cfg.window, args.copies, args.seed * 7919 + step, cal)
    # validation: fixed samples from the validation performers (synthetic observations only)
    vs = Sampler(val_m, cfg.window, 1, 12345, cal)
    vgen = torch.Generator().manual_seed(54321)
    p_vis_high = cal.get("occluded_visibility_above_half", 0.0) or 0.0
    val_batches = [augment(vs.batch(256, vgen), vgen, p_mirror=0.0, p_vis_high=p_vis_high) for _ in range(8)]
    log.info("data %s: train %d frames, val %d frames; pools in %.0f s", data, train_m.N, val_m.N, time.time() - t0)

    pairs = pair_val = None
    if args.pairs:
        held = tuple(x for x in args.pair_val_subjects.split(",") if x)
        pairs = DetectorPairs(args.pairs, cfg.window, exclude=held)
        pair_val = DetectorPairs(args.pairs, cfg.window, subjects=held) if held else None
        log.info("pairs %s: train %d frames of %s; held out %s (%d frames)", args.pairs, pairs.N,
                 pairs.subjects, held, pair_val.N if pair_val else 0)

    net = RopeNet(cfg)
    if args.init and not ckpt:
        from safetensors.torch import load_file

        cfg_init = RopeConfig.load(args.init / "config.json")
        assert cfg_init == cfg, f"--init config {cfg_init} differs from the run's {cfg}"
        net.load_state_dict(load_file(str(args.init / "rope.safetensors")), strict=True)
        log.info("initialised from %s", args.init)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    best = float("inf")
    if ckpt:
        net.load_state_dict(ckpt["model"], strict=True)
        opt.load_state_dict(ckpt["optimizer"])
        best = float("inf") if args.reset_best else float(ckpt["best"])
        log.info("resumed at step %d (best val MPJPE %.1f mm)", step, best)
    else:
        log.info("new run: %s, %d parameters", cfg, sum(p.numel() for p in net.parameters()))

    def lr_at(s: int) -> float:
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.decay_steps))))

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step, "best": best,
                    "config_json": cfg.to_json()}, tmp)
        os.replace(tmp, ckpt_path)

    t_start = last_ckpt = time.time()
    run_avg: dict[str, float] = {}
    net.train()
    while step < args.max_steps and time.time() - t_start < args.minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        b = augment(sampler.batch(args.batch, gen), gen, p_vis_high=p_vis_high)
        total, parts, _ = losses(net, b)
        if pairs is not None:
            bp = augment(pairs.batch(args.pair_batch, gen), gen, p_part=0.15, p_trunc=0.05)
            t_pair, p_parts, _ = pair_losses(net, bp)
            total = total + t_pair
            parts.update(p_parts)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        for k, v in {"total": float(total.detach()), **parts}.items():
            run_avg[k] = 0.98 * run_avg.get(k, v) + 0.02 * v
        if step % 100 == 0:
            log.info("step %d lr %.2e %s", step, lr_at(step), " ".join(f"{k} {v:.4f}" for k, v in run_avg.items()))
        if step % args.refresh == 0:
            sampler.refresh()
        if step % args.eval_every == 0:
            v = validate(net, val_batches)
            if pair_val is not None:
                v.update(validate_pairs(net, pair_val))
            score = v["pair_mpjpe"] if pair_val is not None else v["mpjpe"]
            improved = score < best
            if improved:
                best = score
                save_weights(net, args.run / "best")
                (args.run / "best" / "val.json").write_text(json.dumps({"step": step, **v}) + "\n")
            pair_txt = (f", held-out pairs MPJPE {v['pair_mpjpe']:.1f} PA-MPJPE {v['pair_pa_mpjpe']:.1f}"
                        if pair_val is not None else "")
            log.info("val step %d: MPJPE %.1f mm, PA-MPJPE %.1f mm, geodesic %.1f deg%s%s", step, v["mpjpe"],
                     v["pa_mpjpe"], v["geodesic_deg"], pair_txt, " (best)" if improved else "")
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            save_checkpoint()
            last_ckpt = time.time()
    save_checkpoint()
    save_weights(net, args.run / "last")
    log.info("stopped at step %d after %.1f min; best val score %.1f mm", step, (time.time() - t_start) / 60, best)
    return 0


if __name__ == "__main__":
    sys.exit(main())
