"""Is the camera moving? Median optical flow of background corners between consecutive frames.

Runs on small grey frames (about 1 ms a frame); the person's box (from the landmarks) is masked out.
"""

from __future__ import annotations

import cv2
import numpy as np

_WIDTH = 192


class CameraMotionMeter:
    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.motion: list[float] = []  # per frame: median background displacement / image width

    def update(self, rgb: np.ndarray, person_xy: np.ndarray | None) -> None:
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

    def update(self, rgb: np.ndarray, person_xy: np.ndarray | None) -> None:
        """Next frame (RGB) and the person's landmarks (N, 2) normalised to the frame, or None."""
        grey = self._grey(rgb)
        empty = (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
        if self._prev is None:
            self._H.append(np.eye(3))
            self.key_index.append(0)
            self.matches.append(empty)
            self._new_keyframe(grey, person_xy, np.eye(3))
            self._prev = grey
            return
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
