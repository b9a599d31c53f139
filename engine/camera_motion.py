"""Is the camera moving? Median optical flow of background corners between consecutive frames.

Runs on small grey frames (about 1 ms a frame, ~0.3 ms from the camera tracker's grey frame); the
person's box (from the landmarks) is masked out.
"""

from __future__ import annotations

import cv2
import numpy as np

_WIDTH = 192


class CameraMotionMeter:
    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.motion: list[float] = []  # per frame: median background displacement / image width

    def update(self, rgb: np.ndarray | None, person_xy: np.ndarray | None, grey: np.ndarray | None = None) -> None:
        """Next frame: ``rgb``, or ``grey``, a smaller grey copy of it already made (the camera tracker's,
        :meth:`CameraTracker.update` returns it), which saves most of the cost."""
        if grey is not None:
            h, w = grey.shape[:2]
            grey = cv2.resize(grey, (_WIDTH, max(8, int(round(h * _WIDTH / w)))), interpolation=cv2.INTER_AREA)
        else:
            k = max(1, rgb.shape[1] // (2 * _WIDTH))
            rgb = rgb[::k, ::k]  # cheap decimation first: INTER_AREA on the full frame costs ~3 ms at 720p
            h, w = rgb.shape[:2]
            s = _WIDTH / w
            grey = cv2.cvtColor(cv2.resize(rgb, (_WIDTH, max(8, int(round(h * s)))), interpolation=cv2.INTER_AREA),
                                cv2.COLOR_RGB2GRAY)
        mask = np.full(grey.shape, 255, np.uint8)
        if person_xy is not None and np.isfinite(person_xy).all():
            x0, y0 = np.clip(person_xy.min(0), 0, 1)
            x1, y1 = np.clip(person_xy.max(0), 0, 1)
            gh, gw = grey.shape
            pad = 0.1
            mask[int(max(0, y0 - pad) * gh):int(min(1, y1 + pad) * gh) + 1,
                 int(max(0, x0 - pad) * gw):int(min(1, x1 + pad) * gw) + 1] = 0
        value = np.nan
        if self._prev is not None:
            pts = cv2.goodFeaturesToTrack(self._prev, maxCorners=80, qualityLevel=0.01, minDistance=6, mask=mask)
            if pts is not None and len(pts) >= 8:
                nxt, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, pts, None, winSize=(15, 15), maxLevel=2)
                ok = st[:, 0] == 1
                if ok.sum() >= 6:
                    d = np.linalg.norm((nxt - pts)[ok, 0], axis=-1)
                    value = float(np.median(d)) / _WIDTH
        self.motion.append(value)
        self._prev = grey

    def is_moving(self, threshold: float = 0.004) -> bool | None:
        """None when too little background texture was seen to tell."""
        m = np.asarray(self.motion, float)
        m = m[np.isfinite(m)]
        if len(m) < 5:
            return None
        return bool(np.quantile(m, 0.75) > threshold)


class CameraTracker:
    """Camera rotation from the background: feature tracks between keyframes, chained homographies.

    Corners (GFTT) are found on a keyframe outside the person's box, followed frame to frame with
    Lucas-Kanade; the homography from the keyframe to the current frame (RANSAC) is chained onto the
    keyframe's homography from the first frame. Measuring against the keyframe, not the previous frame,
    keeps the drift of a static camera small (platform.md: consecutive-frame chaining drifts ~4 degrees
    per 100 frames). A new keyframe starts when too few tracks survive or every ``keyframe_every`` frames.
    :meth:`rotations` turns the homographies into camera rotations with the pure-rotation model
    ``H = K R K^-1`` (pans, tilts, handheld shake; a camera that also travels makes it approximate).
    Runs on frames about ``width`` pixels wide (~2-4 ms a frame).
    """

    def __init__(self, width: int = 320, keyframe_every: int = 15, max_corners: int = 200,
                 min_tracks: int = 30) -> None:
        self.width, self.keyframe_every, self.max_corners, self.min_tracks = width, keyframe_every, max_corners, min_tracks
        self.size: tuple[int, int] | None = None          # (w, h) of the tracking frames
        self._H: list[np.ndarray] = []                    # per frame: frame 0 -> frame t (tracking pixels)
        self._prev: np.ndarray | None = None
        self._key_pts: np.ndarray | None = None           # (N, 1, 2) keyframe positions of the live tracks
        self._cur_pts: np.ndarray | None = None           # (N, 1, 2) their positions in the previous frame
        self._H_key = np.eye(3)                           # frame 0 -> keyframe
        self._since_key = 0
        self._key_index = 0
        self.key_index: list[int] = []                    # per frame: its keyframe's index
        # per frame: RANSAC-inlier tracks (keyframe pixels, current pixels), at most ``keep`` of them
        self.matches: list[tuple[np.ndarray, np.ndarray]] = []
        self.keep = 80

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        k = max(1, rgb.shape[1] // (2 * self.width))
        rgb = rgb[::k, ::k]
        h, w = rgb.shape[:2]
        size = (self.width, max(8, int(round(h * self.width / w))))
        self.size = size
        return cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)

    def _new_keyframe(self, grey: np.ndarray, person_xy: np.ndarray | None, H: np.ndarray) -> None:
        mask = np.full(grey.shape, 255, np.uint8)
        if person_xy is not None and np.isfinite(person_xy).all():
            gh, gw = grey.shape
            x0, y0 = np.clip(person_xy.min(0) - 0.08, 0, 1)
            x1, y1 = np.clip(person_xy.max(0) + 0.08, 0, 1)
            mask[int(y0 * gh):int(y1 * gh) + 1, int(x0 * gw):int(x1 * gw) + 1] = 0
        pts = cv2.goodFeaturesToTrack(grey, maxCorners=self.max_corners, qualityLevel=0.01, minDistance=7,
                                      mask=mask)
        self._key_pts = pts if pts is not None else np.zeros((0, 1, 2), np.float32)
        self._cur_pts = self._key_pts.copy()
        self._H_key = H
        self._since_key = 0
        self._key_index = len(self._H) - 1

    def update(self, rgb: np.ndarray, person_xy: np.ndarray | None) -> np.ndarray:
        """Next frame (RGB) and the person's landmarks (N, 2) normalised to the frame, or None. Returns
        the small grey frame it tracked on (for :class:`CameraMotionMeter` to reuse)."""
        grey = self._grey(rgb)
        empty = (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
        if self._prev is None:
            self._H.append(np.eye(3))
            self.key_index.append(0)
            self.matches.append(empty)
            self._new_keyframe(grey, person_xy, np.eye(3))
            self._prev = grey
            return grey
        self.key_index.append(self._key_index)
        match = empty
        H = self._H[-1]
        if self._cur_pts is not None and len(self._cur_pts) >= 8:
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, self._cur_pts, None, winSize=(21, 21),
                                                  maxLevel=3)
            ok = st[:, 0] == 1
            self._key_pts, self._cur_pts = self._key_pts[ok], nxt[ok]
            if len(self._cur_pts) >= 8:
                H_kc, inl = cv2.findHomography(self._key_pts, self._cur_pts, cv2.RANSAC, 1.5)
                if H_kc is not None and inl is not None and inl.sum() >= 8:
                    H = H_kc @ self._H_key
                    keep = inl[:, 0] == 1                       # drop tracks that left the background
                    self._key_pts, self._cur_pts = self._key_pts[keep], self._cur_pts[keep]
                    step = max(1, len(self._key_pts) // self.keep)
                    match = (self._key_pts[::step, 0].copy(), self._cur_pts[::step, 0].copy())
        H = H / H[2, 2]
        self._H.append(H)
        self.matches.append(match)
        self._since_key += 1
        if self._cur_pts is None or len(self._cur_pts) < self.min_tracks or self._since_key >= self.keyframe_every:
            self._new_keyframe(grey, person_xy, H)
        self._prev = grey
        return grey

    def motion_extent(self) -> np.ndarray:
        """Per frame: how far the view moved since the first frame, as the largest displacement of the
        frame's corners under the homography, in frame widths."""
        if self.size is None or not self._H:
            return np.zeros(0)
        w, h = self.size
        c = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float)      # (4, 3)
        q = np.einsum("tab,nb->tna", self.homographies(), c)                   # (T, 4, 3)
        q = q[..., :2] / q[..., 2:3]
        return np.linalg.norm(q - c[None, :, :2], axis=-1).max(1) / w

    def is_moving(self, threshold: float = 0.015) -> bool | None:
        """True when the view moved by more than ``threshold`` frame widths (about 1 degree at the default
        focal) in at least a tenth of the frames; None when too little background was tracked to tell."""
        ext = self.motion_extent()
        tracked = np.array([len(k) >= 8 for k, _ in self.matches[1:]], bool)
        if len(ext) < 5 or tracked.mean() < 0.5:
            return None
        return bool(np.quantile(ext, 0.9) > threshold)

    def homographies(self) -> np.ndarray:
        """(T, 3, 3) frame 0 -> frame t, in tracking-frame pixels."""
        return np.asarray(self._H, np.float64).reshape(-1, 3, 3)

    def rotations(self, focal_display: float, display_width: int) -> np.ndarray:
        """(T, 3, 3) camera rotations R_t with X_t = R_t X_0 (OpenCV camera axes of frame t from frame 0's)."""
        from scipy.spatial.transform import Rotation

        if self.size is None or not self._H:
            return np.zeros((0, 3, 3))
        w, h = self.size
        f = focal_display * w / display_width
        K = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
        M = np.linalg.inv(K) @ self.homographies() @ K                    # (T, 3, 3) ~ scale * R
        M = M / np.cbrt(np.linalg.det(M))[:, None, None]
        return Rotation.from_matrix(M).as_matrix()                        # nearest rotations


def tracking_intrinsics(tracker: CameraTracker, focal_display: float, display_width: int) -> np.ndarray:
    """(3, 3) K of the tracker's small frames (principal point at the centre)."""
    w, h = tracker.size or (display_width, display_width)
    f = focal_display * w / display_width
    return np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])


def decompose_plane_homography(M: np.ndarray, n: np.ndarray, d: float) -> tuple[np.ndarray, np.ndarray]:
    """``M ~ R + t n^T / d`` (a calibrated homography induced by the plane ``n . X = d``, up to scale) with
    the plane known -> (R, t). Directions in the plane are moved by R alone (``M u = s R u`` for ``u``
    orthogonal to ``n``), which fixes R and the scale; the rest of ``M n`` is the translation."""
    from scipy.spatial.transform import Rotation

    n = n / np.linalg.norm(n)
    u1 = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    u1 /= np.linalg.norm(u1)
    u2 = np.cross(n, u1)
    a1, a2 = M @ u1, M @ u2
    U = np.stack([u1, u2, n], 1)
    best = None
    for s in (0.5 * (np.linalg.norm(a1) + np.linalg.norm(a2)), -0.5 * (np.linalg.norm(a1) + np.linalg.norm(a2))):
        Q = np.stack([a1 / s, a2 / s, np.cross(a1, a2) / s ** 2], 1)
        R = Rotation.from_matrix(Q @ U.T).as_matrix()
        if best is None or np.trace(R) > np.trace(best[0]):   # the motion between nearby frames is small
            best = (R, s)
    R, s = best
    t = d * (M @ n / s - R @ n)
    return R, t


def _rotation_only(M: np.ndarray, tol: float = 0.03) -> np.ndarray | None:
    """The rotation of a calibrated homography of a purely rotating camera, None when ``M`` is not one
    (the camera also travelled: a rotation read from it would be wrong)."""
    from scipy.spatial.transform import Rotation

    det = np.linalg.det(M)
    if not np.isfinite(det) or abs(det) < 1e-9:
        return None
    M = M / np.cbrt(det)
    R = Rotation.from_matrix(M).as_matrix()
    return R if np.linalg.norm(M - R) < tol else None


def camera_poses(tracker: CameraTracker, K: np.ndarray, ground_n: np.ndarray | None = None,
                 ground_point: np.ndarray | None = None, max_range: float = 30.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame camera motion from the tracks: ``X_t = R_t X_0 + t_t`` (OpenCV axes, metres).

    With the ground plane of the first frame (``ground_n`` up, ``ground_point`` on the floor, both in the
    first camera's coordinates) the tracks that lie on the floor give rotation AND metric translation
    (the camera height sets the scale); without it, or with too few floor tracks, a frame gets the pure
    rotation of all tracks when its homography is one, else it keeps the previous pose. Returns R (T, 3, 3),
    t (T, 3) and the method per frame (0 held, 1 rotation only, 2 floor plane).
    """
    T = len(tracker.matches)
    R = np.tile(np.eye(3), (T, 1, 1))
    t = np.zeros((T, 3))
    how = np.zeros(T, np.int8)
    Kinv = np.linalg.inv(K)
    for i in range(1, T):
        k = tracker.key_index[i]
        key, cur = tracker.matches[i]
        R_k, t_k = R[k], t[k]
        R[i], t[i] = R[i - 1], t[i - 1]
        if len(key) < 8:
            continue
        if ground_n is not None and ground_point is not None:
            n_k = R_k @ ground_n
            d_k = float(n_k @ (R_k @ ground_point + t_k))
            rays = np.c_[key, np.ones(len(key))] @ Kinv.T                      # (N, 3)
            lam = d_k / (rays @ n_k)
            on_floor = (lam > 0) & (lam * np.linalg.norm(rays, axis=1) < max_range)
            if on_floor.sum() >= 10:
                H, inl = cv2.findHomography(key[on_floor], cur[on_floor], cv2.RANSAC, 1.5)
                if H is not None and inl is not None and inl.sum() >= 8:
                    R_kt, t_kt = decompose_plane_homography(Kinv @ H @ K, n_k, d_k)
                    R[i], t[i], how[i] = R_kt @ R_k, R_kt @ t_k + t_kt, 2
                    continue
        H, inl = cv2.findHomography(key, cur, cv2.RANSAC, 1.5)
        if H is None:
            continue
        R_kt = _rotation_only(Kinv @ H @ K)
        if R_kt is not None:
            R[i], t[i], how[i] = R_kt @ R_k, R_kt @ t_k, 1
    return R, t, how
