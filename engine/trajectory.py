"""Trajectory v1: camera-frame root from perspective, ground plane and a gravity-aligned Z-up world.

For a static camera:
1. per frame, the translation ``t`` that puts the solved (metric, hip-centred) skeleton points in front
   of the camera so that they project onto the 2D landmarks: a linear least-squares problem in ``t``
   (each point gives ``f (X + tx) = (u - cx)(Z + tz)`` and the same for y), visibility weighted;
2. ``t`` is smoothed over short windows (depth more than image position);
3. the up direction is the mean torso direction, refined by the floor plane when the person moves
   around enough to span one (RANSAC over the still feet: jumps and mis-detections do not tilt it);
   the ground is the lowest level the still feet consistently rest on (not a box top);
4. the world: Z up, origin on the ground below the first pelvis, +Y the camera's horizontal view axis.

Moving cameras are not handled yet: the motion is then relative to the camera (a warning says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from .geometry.frames import BC_TO_CV as M_BC_TO_CV  # body-camera -> OpenCV camera (re-exported)


def default_focal(width: int, height: int) -> float:
    """Focal length in pixels when none is given: the diagonal (about 53 degrees diagonal field of view)."""
    return float(np.hypot(width, height))


def focal_from_fov(fov_deg: float, width: int, height: int) -> float:
    """Focal length from the horizontal field of view of the displayed frame."""
    return 0.5 * width / np.tan(np.radians(fov_deg) / 2.0)


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def camera_translation(points_cv: np.ndarray, uv: np.ndarray, w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Least-squares translation per frame.

    points_cv: (T, N, 3) metric points in camera axes relative to an origin; uv: (T, N, 2) pixels;
    w: (T, N) weights. Returns (T, 3) camera-frame position of the origin (NaN where unsolvable).
    """
    f, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    T = points_cv.shape[0]
    out = np.full((T, 3), np.nan)
    for t in range(T):
        ok = (w[t] > 0.05) & np.all(np.isfinite(uv[t]), -1) & np.all(np.isfinite(points_cv[t]), -1)
        if ok.sum() < 3:
            continue
        X, Y, Z = points_cv[t, ok].T
        du, dv = uv[t, ok, 0] - cx, uv[t, ok, 1] - cy
        sw = np.sqrt(w[t, ok])
        n = ok.sum()
        A = np.zeros((2 * n, 3))
        b = np.zeros(2 * n)
        A[:n, 0], A[:n, 2], b[:n] = f, -du, du * Z - f * X
        A[n:, 1], A[n:, 2], b[n:] = f, -dv, dv * Z - f * Y
        A *= np.concatenate([sw, sw])[:, None]
        b *= np.concatenate([sw, sw])
        sol, *_ = np.linalg.lstsq(A, b, rcond=None)
        if sol[2] > 0.1:
            out[t] = sol
    return out


def reject_depth_outliers(t_cam: np.ndarray, support: np.ndarray, fps: float, *, rel_tol: float = 0.15,
                          min_support: float = 2.0) -> np.ndarray:
    """Set to NaN the frames whose translation is unreliable: too little landmark support (sum of
    weights), or a depth more than ``rel_tol`` away from its running median over about half a second
    (a few visible points can put the body far too near or too far). Callers interpolate the gaps."""
    from scipy.ndimage import median_filter

    t = t_cam.copy()
    t[support < min_support] = np.nan
    z = t[:, 2]
    ok = np.isfinite(z)
    if ok.sum() >= 3:
        filled = np.interp(np.arange(len(z)), np.flatnonzero(ok), z[ok])
        med = median_filter(filled, size=max(3, int(round(0.5 * fps)) | 1), mode="nearest")
        t[np.abs(filled - med) > rel_tol * med] = np.nan
    return t


def fill_gaps(x: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Linear interpolation along time (axis 0) over the frames that are not ``valid``, held at the ends.

    ``valid`` defaults to the frames whose values are all finite.
    """
    T = x.shape[0]
    flat = x.reshape(T, -1).copy()
    if valid is None:
        valid = np.all(np.isfinite(flat), axis=1)
    if valid.any() and not valid.all():
        idx = np.arange(T)
        for c in range(flat.shape[1]):
            flat[~valid, c] = np.interp(idx[~valid], idx[valid], flat[valid, c])
    return flat.reshape(x.shape)


def smooth(x: np.ndarray, fps: float, seconds: float, order: int = 2) -> np.ndarray:
    """Savitzky-Golay along time with a window of about ``seconds`` (odd, >= order + 2, <= length)."""
    T = x.shape[0]
    win = int(round(seconds * fps)) | 1
    win = min(win, T if T % 2 else T - 1)
    if win <= order + 1:
        return x
    return savgol_filter(x, win, order, axis=0, mode="interp")


@dataclass
class WorldFrame:
    B: np.ndarray       # (3, 3) columns = world X, Y, Z axes in camera coordinates
    origin: np.ndarray  # (3,) world origin in camera coordinates

    def to_world(self, p_cam: np.ndarray) -> np.ndarray:
        return (p_cam - self.origin) @ self.B

    def extrinsic(self) -> np.ndarray:
        """World-to-camera 4x4: p_cam = B p_world + origin."""
        E = np.eye(4)
        E[:3, :3] = self.B
        E[:3, 3] = self.origin
        return E


GROUND_TOL = 0.04        # m, a contact point within this of a plane supports it
STEP = 0.15              # m, a lower level this far below the densest one is another floor (under a box)
MIN_SUPPORT = 0.15       # share of the contact points a floor level needs (and at least 8 points)
CAMERA_HEIGHT = (0.3, 6.0)  # m, plausible camera heights above the floor (outside: the floor is suspect)
FLOOR_AGREE_DEG = 5.0    # RANSAC's floor and the v1 plane fit closer than this: RANSAC's (the more precise)


def _levels(h: np.ndarray) -> tuple[float, float]:
    """(lowest supported level, densest level) of heights ``h`` (see ``lowest_level``)."""
    return lowest_level(h, return_both=True)  # type: ignore[return-value]


def lowest_level(h: np.ndarray, tol: float = GROUND_TOL, min_share: float = MIN_SUPPORT,
                 return_both: bool = False) -> float:
    """The floor's height from contact heights ``h``: the densest level, unless a level at least ``STEP``
    lower holds ``min_share`` of them (the floor under a box or a step the person stood on; an outlier
    below does not count): the lowest value whose ``tol`` neighbourhood holds that share, then the
    densest level just above it, and the median of its neighbourhood."""
    hs = np.sort(np.asarray(h, np.float64))
    n = len(hs)
    if n == 0:
        raise ValueError("no heights")
    need = max(min(8, n), int(np.ceil(min_share * n)))
    counts = np.searchsorted(hs, hs + tol, "right") - np.searchsorted(hs, hs - tol, "left")
    ok = np.flatnonzero(counts >= need)
    i = int(ok[0]) if len(ok) else int(np.argmax(counts))
    near = np.flatnonzero((hs >= hs[i]) & (hs <= hs[i] + 2 * tol))
    j = int(near[np.argmax(counts[near])])
    low = float(np.median(hs[np.abs(hs - hs[j]) <= tol]))
    m = int(np.argmax(counts))
    main = float(np.median(hs[np.abs(hs - hs[m]) <= tol]))
    if return_both:
        return low, main
    # a distinct lower level (a floor under a box or a step, >= STEP) wins; otherwise the densest level:
    # a tilted up direction spreads one floor over a range of heights, whose bottom is not the floor
    return low if main - low >= STEP else main


def ransac_floor(pts: np.ndarray, up: np.ndarray, *, tol: float = GROUND_TOL, max_tilt: float = 20.0,
                 iterations: int = 300, seed: int = 0) -> tuple[np.ndarray, float, int] | None:
    """The floor's orientation from contact points (N, 3): the plane within ``max_tilt`` degrees of ``up``
    that the most points lie on (RANSAC, refined by least squares over its inliers). A box top or a
    step is parallel to the floor, so the normal holds either way; which level is the floor is decided
    by ``lowest_level`` along it. Returns (normal, offset along it, inliers) or None."""
    n_pts = len(pts)
    if n_pts < 12:
        return None
    rng = np.random.default_rng(seed)
    need = max(8, int(np.ceil(MIN_SUPPORT * n_pts)))
    cos_max = np.cos(np.radians(max_tilt))
    best: tuple[np.ndarray, float, int] | None = None
    for _ in range(iterations):
        a, b, c = pts[rng.choice(n_pts, 3, replace=False)]
        nrm = np.cross(b - a, c - a)
        ln = np.linalg.norm(nrm)
        if ln < 1e-6:
            continue
        nrm = nrm / ln
        if nrm @ up < 0:
            nrm = -nrm
        if nrm @ up < cos_max:
            continue
        d0 = float(a @ nrm)
        k = int((np.abs(pts @ nrm - d0) < tol).sum())
        if k >= need and (best is None or k > best[2]):
            best = (nrm, d0, k)
    if best is None:
        return None
    nrm, d0, _ = best
    for _ in range(2):   # least squares over the inliers
        q = pts[np.abs(pts @ nrm - d0) < tol]
        cen = q.mean(0)
        _, _, vt = np.linalg.svd(q - cen)
        nf = vt[2] if vt[2] @ up > 0 else -vt[2]
        if nf @ up < cos_max:
            break
        nrm, d0 = nf, float(cen @ nf)
    return nrm, d0, int((np.abs(pts @ nrm - d0) < tol).sum())


def plane_support(pts: np.ndarray, normal: np.ndarray, tol: float = GROUND_TOL) -> int:
    """How many points (N, 3) the best slab of thickness ``2 tol`` perpendicular to ``normal`` holds."""
    h = np.sort(pts @ normal)
    if len(h) == 0:
        return 0
    return int((np.searchsorted(h, h + 2 * tol, "right") - np.arange(len(h))).max())


def _plane_fit(foot: np.ndarray, up: np.ndarray) -> np.ndarray:
    """The v1 plane fit: through the lowest foot point of each frame, keeping the lower 60 % of the
    residuals twice; a normal more than 20 degrees from ``up`` is not taken."""
    h = foot @ up
    pts = foot[np.arange(len(foot)), np.argmin(h, axis=1)]
    n = up
    for _ in range(2):
        c = pts.mean(0)
        _, _, vt = np.linalg.svd(pts - c)
        n_fit = vt[2] if vt[2] @ up > 0 else -vt[2]
        if np.degrees(np.arccos(np.clip(n_fit @ up, -1, 1))) < 20.0:
            n = n_fit
        r = (pts - c) @ n
        pts = pts[np.abs(r) <= np.quantile(np.abs(r), 0.6)]
        if len(pts) < 10:
            break
    return n / np.linalg.norm(n)


def contact_points(foot_cam: np.ndarray, up: np.ndarray, fps: float | None = None) -> np.ndarray:
    """(N, 3) the lowest foot point of each frame when it is still: slower than 0.3 m/s when the rate is
    known (engine.contacts.SPEED), else in the slower half of the frames."""
    h = foot_cam @ up
    low = foot_cam[np.arange(len(foot_cam)), np.argmin(h, axis=1)]  # (T, 3)
    if len(low) < 4:
        return low
    step = np.linalg.norm(np.diff(low, axis=0), axis=-1)
    speed = np.r_[step[0], np.minimum(step[:-1], step[1:]), step[-1]]
    slow = speed <= np.quantile(speed, 0.5)
    if fps:
        from .contacts import SPEED

        strict = speed * fps < SPEED
        if strict.sum() >= max(8, 0.15 * len(low)):
            slow = strict
    return low[slow]


def estimate_world(foot_cam: np.ndarray, torso_up_cam: np.ndarray, pelvis_cam: np.ndarray,
                   valid: np.ndarray, fps: float | None = None) -> tuple[WorldFrame, dict]:
    """Up direction and ground from foot points (T, F, 3) and torso directions (T, 3), camera frame.

    1. The up prior: the mean torso direction (at most 35 degrees from the camera's own up).
    2. The floor's orientation, when the feet span an area (a person who walks around): RANSAC over the
       still feet (``contact_points``, ``ransac_floor``): the plane within 20 degrees of the prior that
       the most contact points lie on, so frames of a jump, a mis-detection or a box top do not tilt it
       (``info["up_source"] = "ground_ransac"``); the v1 trimmed plane fit when RANSAC finds no plane
       with enough support, or when the two disagree by more than ``FLOOR_AGREE_DEG`` and RANSAC's
       plane does not hold clearly more contact points (``"ground_plane"``, ``info["floor_ambiguous"]``);
       the torso prior when the feet stay in one place.
    3. The floor's level along that up: the lowest level the contact points consistently rest on
       (``lowest_level``: the floor, not the top of a box the person stood on), so that feet in contact
       are at z = 0.
    4. A sanity check: a camera height outside ``CAMERA_HEIGHT`` or a pelvis less than 0.4 m above that
       floor puts it one leg length (0.9 m) below the median pelvis instead (``info["ground_suspect"]``).

    ``fps`` (when known) lets ``contact_points`` call a foot still by its speed (engine.contacts.SPEED).
    """
    info: dict = {}
    v = valid & np.all(np.isfinite(torso_up_cam), -1) & np.all(np.isfinite(foot_cam), axis=(1, 2))
    up = np.nanmean(torso_up_cam[v], axis=0) if v.any() else np.array([0.0, -1.0, 0.0])
    up = up / np.linalg.norm(up)
    # tilt of the torso prior is limited to 35 degrees from the camera's own up (-y)
    cam_up = np.array([0.0, -1.0, 0.0])
    ang = np.degrees(np.arccos(np.clip(up @ cam_up, -1, 1)))
    if ang > 35.0:
        axis = np.cross(cam_up, up)
        axis /= np.linalg.norm(axis)
        from scipy.spatial.transform import Rotation

        up = Rotation.from_rotvec(axis * np.radians(35.0)).apply(cam_up)
    info["up_source"] = "torso"
    fv = foot_cam[v]
    if len(fv):
        h = fv @ up
        low = fv[np.arange(len(fv)), np.argmin(h, axis=1)]  # (Tv, 3)
        horiz = low - np.outer(low @ up, up)
        spread = np.linalg.svd(horiz - horiz.mean(0), compute_uv=False)[:2] / np.sqrt(max(len(low), 1))
        pts = contact_points(fv, up, fps)
        if len(low) >= 20 and spread[1] > 0.25:
            found = ransac_floor(pts, up)
            plane = _plane_fit(fv, up)
            up, info["up_source"] = plane, "ground_plane"
            if found is not None:
                # RANSAC's plane, unless it disagrees with the v1 fit without explaining clearly more of
                # the still feet: then the tilt is not determined by them (feet along a narrow strip, as
                # in a jumping-jack clip: two planes 15 degrees apart held the same 50 of 103 points)
                k_r, k_p = plane_support(pts, found[0]), plane_support(pts, plane)
                agree = np.degrees(np.arccos(np.clip(found[0] @ plane, -1, 1))) <= FLOOR_AGREE_DEG
                if agree or k_r >= k_p + max(4, int(0.1 * len(pts))):
                    up, info["up_source"] = found[0], "ground_ransac"
                else:
                    info["floor_ambiguous"] = f"RANSAC and the plane fit disagree (support {k_r} vs {k_p} of {len(pts)})"
                info["floor_support"] = round(max(k_r, k_p) / len(pts), 3)
            pts = contact_points(fv, up, fps)   # the still feet along the floor's own up
        ground_h = lowest_level(pts @ up)
        info["ground_source"] = "feet"
    else:
        ground_h = float(np.nanmin(pelvis_cam @ up)) - 0.95
        info["ground_source"] = "pelvis"
    pel = pelvis_cam[v] if v.any() else pelvis_cam
    pel = pel[np.all(np.isfinite(pel), -1)]
    cam_h = -ground_h   # the camera (origin of the camera frame) above the ground, along up
    pelvis_h = float(np.median(pel @ up)) - ground_h if len(pel) else 1.0
    if info["ground_source"] == "feet" and not (CAMERA_HEIGHT[0] <= cam_h <= CAMERA_HEIGHT[1] and pelvis_h > 0.4):
        info["ground_suspect"] = f"camera {cam_h:.2f} m, pelvis {pelvis_h:.2f} m above the floor from the feet"
        if len(pel):
            ground_h = float(np.median(pel @ up)) - 0.9
            info["ground_source"] = "pelvis"
    fwd = np.array([0.0, 0.0, 1.0]) - up * up[2]
    fwd /= np.linalg.norm(fwd)
    X = np.cross(fwd, up)
    B = np.stack([X, fwd, up], axis=1)
    first = pelvis_cam[np.argmax(valid)] if valid.any() else pelvis_cam[0]
    origin = first - up * (first @ up - ground_h)
    info["camera_height"] = float(-(origin @ up) + 0.0)
    info["camera_pitch_deg"] = float(np.degrees(np.arcsin(np.clip(-up[2], -1, 1))))
    return WorldFrame(B=B, origin=origin), info


def camera_centres(extrinsics: np.ndarray) -> np.ndarray:
    """(T, 4, 4) world -> camera extrinsics -> (T, 3) camera centres in the world (``-R^T t``)."""
    return -np.einsum("tba,tb->ta", extrinsics[:, :3, :3], extrinsics[:, :3, 3])


def onto_rays(points: np.ndarray, centres: np.ndarray, through: np.ndarray) -> np.ndarray:
    """Each point (T, 3) moved to the nearest point of the line from ``centres`` (T, 3) through
    ``through`` (T, 3): it keeps its distance along the viewing ray and takes the ray's direction, so a
    point seen by a static camera stays where it was seen while its depth can change."""
    d = through - centres
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    s = np.einsum("ta,ta->t", points - centres, d)
    return centres + s[:, None] * d


def keep_in_view(root_new: np.ndarray, root_seen: np.ndarray, extrinsics: np.ndarray, static: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A stage moved the root from where the camera saw it (``root_seen``) to ``root_new`` (T, 3): the
    body must still project where it was seen. A static camera keeps its place and the root moves only
    along its viewing ray (:func:`onto_rays`: its distance changes, its image position does not); a
    moving camera's position is known only relative to the body, so it moves with the root
    (``X_cam = R X_world + t``, hence ``t -= R (root_new - root_seen)``). Returns (root, extrinsics)."""
    E = np.array(extrinsics, copy=True)
    if static:
        return onto_rays(root_new, camera_centres(E), root_seen), E
    E[:, :3, 3] -= np.einsum("tab,tb->ta", E[:, :3, :3], root_new - root_seen)
    return root_new, E
