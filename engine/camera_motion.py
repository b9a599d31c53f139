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
