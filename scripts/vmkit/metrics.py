"""Motion-estimation metrics as the field reports them (GVHMR / WHAM evaluation code conventions).

All inputs are numpy arrays in metres: joints (T, J, 3), trajectories (T, 3). Every ``*_per_frame`` /
``*_errors`` function returns the per-frame (or per-sample) values in the reported unit; the short
names return their mean.

- MPJPE (mm): mean joint distance after subtracting the root (pelvis) of each frame.
- PA-MPJPE (mm): after a per-frame similarity (Umeyama: scale, rotation, translation) alignment.
- W-MPJPE100 (mm): world joints, in chunks of 100 frames; each chunk of the prediction is aligned
  (similarity) on the *first two frames* of the chunk only.
- WA-MPJPE100 (mm): the same chunks, each aligned (similarity) on the whole chunk.
- RTE (%): root translation error after a rigid (no scale) alignment of the whole trajectory,
  divided by the distance the ground truth travelled, x100.
- Jitter (10 m/s^3): norm of the third finite difference x fps^3, /10.
- Accel error (mm/frame^2): norm of the difference of the second finite differences.
- Foot sliding (mm/frame): mean displacement per frame of predicted foot points during the frames
  where the ground-truth point moves < 1 cm/frame.
"""

from __future__ import annotations

import numpy as np

CHUNK = 100
CONTACT_THRESHOLD = 0.01  # m/frame


def similarity_transform(src: np.ndarray, dst: np.ndarray, *, scale: bool = True,
                         weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Umeyama: s (...), R (..., 3, 3), t (..., 3) minimising sum_i w_i |s R src_i + t - dst_i|^2.

    src, dst: (..., N, 3). Without ``scale``, s = 1 (Kabsch)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(src.shape[:-1]) if weights is None else np.broadcast_to(weights, src.shape[:-1]).astype(np.float64)
    w = w / w.sum(axis=-1, keepdims=True)
    mu_s = np.einsum("...n,...nd->...d", w, src)
    mu_d = np.einsum("...n,...nd->...d", w, dst)
    xs = src - mu_s[..., None, :]
    xd = dst - mu_d[..., None, :]
    cov = np.einsum("...n,...na,...nb->...ab", w, xd, xs)            # (..., 3, 3) sum w y x^T
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.zeros_like(cov)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    R = U @ D @ Vt
    if scale:
        var_s = np.einsum("...n,...n->...", w, np.sum(xs * xs, axis=-1))
        s = np.einsum("...i,...i->...", S, np.diagonal(D, axis1=-2, axis2=-1)) / np.maximum(var_s, 1e-12)
    else:
        s = np.ones(src.shape[:-2])
    t = mu_d - s[..., None] * np.einsum("...ab,...b->...a", R, mu_s)
    return s, R, t


def apply_similarity(s: np.ndarray, R: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x (..., N, 3) -> s R x + t, with s/R/t broadcast over the leading axes."""
    return np.asarray(s)[..., None, None] * np.einsum("...ab,...nb->...na", R, x) + np.asarray(t)[..., None, :]


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


def mpjpe_per_frame(pred: np.ndarray, gt: np.ndarray, root: int | None = 0) -> np.ndarray:
    """(T,) mm. ``root``: joint index subtracted from each frame (None: no alignment)."""
    if root is not None:
        pred = pred - pred[..., root:root + 1, :]
        gt = gt - gt[..., root:root + 1, :]
    return _dist(pred, gt).mean(-1) * 1000.0


def mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | None = 0) -> float:
    return float(mpjpe_per_frame(pred, gt, root).mean())


pve = mpjpe  # on vertices: MVE / PVE


def pa_mpjpe_per_frame(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    s, R, t = similarity_transform(pred, gt, scale=True)
    return _dist(apply_similarity(s, R, t, pred), gt).mean(-1) * 1000.0


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(pa_mpjpe_per_frame(pred, gt).mean())


def _chunks(T: int, chunk: int) -> list[slice]:
    return [slice(k, min(k + chunk, T)) for k in range(0, T, chunk)]


def w_mpjpe_per_frame(pred: np.ndarray, gt: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    out = []
    for sl in _chunks(len(gt), chunk):
        p, g = pred[sl], gt[sl]
        n = min(2, len(g))
        s, R, t = similarity_transform(p[:n].reshape(-1, 3), g[:n].reshape(-1, 3), scale=True)
        out.append(_dist(apply_similarity(s, R, t, p), g).mean(-1))
    return np.concatenate(out) * 1000.0


def w_mpjpe(pred: np.ndarray, gt: np.ndarray, chunk: int = CHUNK) -> float:
    return float(w_mpjpe_per_frame(pred, gt, chunk).mean())


def wa_mpjpe_per_frame(pred: np.ndarray, gt: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    out = []
    for sl in _chunks(len(gt), chunk):
        p, g = pred[sl], gt[sl]
        s, R, t = similarity_transform(p.reshape(-1, 3), g.reshape(-1, 3), scale=True)
        out.append(_dist(apply_similarity(s, R, t, p), g).mean(-1))
    return np.concatenate(out) * 1000.0


def wa_mpjpe(pred: np.ndarray, gt: np.ndarray, chunk: int = CHUNK) -> float:
    return float(wa_mpjpe_per_frame(pred, gt, chunk).mean())


def rte_per_frame(pred_root: np.ndarray, gt_root: np.ndarray) -> np.ndarray:
    """(T,) %: rigid-aligned root error over the total distance travelled by the ground truth."""
    _, R, t = similarity_transform(pred_root, gt_root, scale=False)
    aligned = pred_root @ R.T + t
    travelled = float(np.linalg.norm(np.diff(gt_root, axis=0), axis=-1).sum())
    return _dist(aligned, gt_root) / max(travelled, 1e-9) * 100.0


def rte(pred_root: np.ndarray, gt_root: np.ndarray) -> float:
    return float(rte_per_frame(pred_root, gt_root).mean())


def jitter_per_frame(joints: np.ndarray, fps: float = 30.0) -> np.ndarray:
    """(T-3,) in 10 m/s^3."""
    d3 = joints[3:] - 3 * joints[2:-1] + 3 * joints[1:-2] - joints[:-3]
    return np.linalg.norm(d3 * fps ** 3, axis=-1).mean(-1) / 10.0


def jitter(joints: np.ndarray, fps: float = 30.0) -> float:
    return float(jitter_per_frame(joints, fps).mean()) if len(joints) > 3 else 0.0


def accel_error_per_frame(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(T-2,) mm/frame^2."""
    acc_p = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    acc_g = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    return _dist(acc_p, acc_g).mean(-1) * 1000.0


def accel_error(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(accel_error_per_frame(pred, gt).mean()) if len(gt) > 2 else 0.0


def foot_sliding_errors(pred_feet: np.ndarray, gt_feet: np.ndarray, thr: float = CONTACT_THRESHOLD) -> np.ndarray:
    """Displacements (mm/frame) of predicted foot points (T, F, 3) over the frames where the ground-truth
    point moves less than ``thr`` metres per frame (a flat array, one value per contact sample)."""
    gt_disp = _dist(gt_feet[1:], gt_feet[:-1])
    contact = gt_disp < thr
    pred_disp = _dist(pred_feet[1:], pred_feet[:-1])
    return pred_disp[contact] * 1000.0


def foot_sliding(pred_feet: np.ndarray, gt_feet: np.ndarray, thr: float = CONTACT_THRESHOLD) -> float:
    e = foot_sliding_errors(pred_feet, gt_feet, thr)
    return float(e.mean()) if e.size else 0.0


def evaluate(pred_joints: np.ndarray, gt_joints: np.ndarray, fps: float = 30.0, root: int = 0,
             foot: tuple[int, ...] = (7, 8, 10, 11)) -> dict[str, float]:
    """All joint metrics for one sequence (vm24 defaults: root = pelvis, feet = ankles + balls)."""
    return {
        "mpjpe": mpjpe(pred_joints, gt_joints, root),
        "pa_mpjpe": pa_mpjpe(pred_joints, gt_joints),
        "w_mpjpe100": w_mpjpe(pred_joints, gt_joints),
        "wa_mpjpe100": wa_mpjpe(pred_joints, gt_joints),
        "rte": rte(pred_joints[:, root], gt_joints[:, root]),
        "jitter": jitter(pred_joints, fps),
        "jitter_gt": jitter(gt_joints, fps),
        "accel_error": accel_error(pred_joints, gt_joints),
        "foot_sliding": foot_sliding(pred_joints[:, list(foot)], gt_joints[:, list(foot)]),
    }
