"""Shot cuts and cross-fades from per-frame signatures (a small colour histogram and a grey thumbnail).

- A **hard cut** between frames ``t-1`` and ``t``: the colour histograms differ by more than
  ``HARD`` (Bhattacharyya distance), or the grey thumbnails by more than ``THUMB_CUT`` (two shots of
  similar colours), and by much more than the neighbouring frame pairs do (a fast pan changes every
  pair a little; a cut changes one pair a lot).
- A **cross-fade** over frames ``a..b``: the frames ``w`` before and after a centre differ like two
  shots (histogram distance above ``FADE`` or thumbnails above ``THUMB_CUT``), no single pair in between does, and the thumbnails in
  between are blends of the two ends (residual of the best ``alpha`` below ``BLEND`` of their difference).
  A pan or a person walking towards the camera changes the picture gradually too, but its middle frame
  is not a mix of its ends. The cut is reported at the fade's middle frame.

``find_cuts`` returns the indices of the first frame of every new shot (0 is never one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HARD = 0.45
FADE = 0.45
BLEND = 0.35
THUMB_CUT = 0.2   # mean absolute grey difference (0..1) of two thumbnails that says: another picture
THUMB = (48, 27)


@dataclass
class Signature:
    hist: np.ndarray    # (H*S*V,) normalised colour histogram
    thumb: np.ndarray   # (h, w) float32 grey thumbnail, 0..1


def signature(rgb: np.ndarray) -> Signature:
    import cv2

    small = cv2.resize(np.ascontiguousarray(rgb), (96, 54), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    h = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel().astype(np.float64)
    h /= max(h.sum(), 1.0)
    grey = cv2.cvtColor(cv2.resize(small, THUMB, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return Signature(hist=h, thumb=grey.astype(np.float32) / 255.0)


def hist_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(a * b))))))


def is_hard_cut(prev: Signature, cur: Signature, threshold: float = HARD) -> bool:
    """Online test on one pair of frames (the tracker uses it to re-select the person at once)."""
    return hist_distance(prev.hist, cur.hist) > threshold and \
        float(np.mean(np.abs(prev.thumb - cur.thumb))) > 0.08


def pair_distances(sigs: list[Signature]) -> np.ndarray:
    """(T,) histogram distance of each frame to the one before (0 for the first)."""
    d = np.zeros(len(sigs))
    for t in range(1, len(sigs)):
        d[t] = hist_distance(sigs[t - 1].hist, sigs[t].hist)
    return d


def _blend_residual(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """Best alpha with m ~ alpha a + (1 - alpha) b and the residual relative to |a - b|."""
    d = (a - b).ravel()
    nd = float(d @ d)
    if nd < 1e-9:
        return 0.5, 1.0
    alpha = float(np.clip((m - b).ravel() @ d / nd, 0.0, 1.0))
    r = (m - (alpha * a + (1 - alpha) * b)).ravel()
    return alpha, float(np.sqrt(r @ r / nd))


def find_cuts(sigs: list[Signature], fps: float, *, hard: float = HARD, fade: float = FADE,
              blend: float = BLEND, max_fade_s: float = 1.2) -> tuple[list[int], list[tuple[int, int]]]:
    """(cuts, fades): first frame of each new shot, and the (first, last) frames of each cross-fade."""
    T = len(sigs)
    if T < 2:
        return [], []
    d = pair_distances(sigs)
    g = np.r_[0.0, [float(np.mean(np.abs(sigs[t - 1].thumb - sigs[t].thumb))) for t in range(1, T)]]
    cuts: list[int] = []
    half = max(2, int(round(0.5 * fps)))

    def local(x: np.ndarray, t: int) -> float:
        nb = np.r_[x[max(1, t - half):t], x[t + 1:t + 1 + half]]
        return float(np.median(nb)) if len(nb) else 0.0

    for t in range(1, T):
        colour = d[t] > hard and d[t] > 3.0 * local(d, t) + 0.1 and g[t] > 0.08
        layout = g[t] > THUMB_CUT and g[t] > 4.0 * local(g, t) + 0.05   # same colours, another picture
        if colour or layout:
            cuts.append(t)
    fades: list[tuple[int, int]] = []
    taken = np.zeros(T, bool)
    for t in cuts:
        taken[max(0, t - half):t + half] = True
    best: list[tuple[float, int, int]] = []
    for w in sorted({max(2, int(round(s * fps))) for s in (0.2, 0.35, 0.5, max_fade_s / 2)}):
        for c in range(w, T - w):
            a, b = c - w, c + w
            if taken[a:b + 1].any() or d[a + 1:b + 1].max() > hard:
                continue
            far = max(hist_distance(sigs[a].hist, sigs[b].hist) / fade,
                      float(np.mean(np.abs(sigs[a].thumb - sigs[b].thumb))) / THUMB_CUT)
            if far <= 1.0:
                continue
            ok = True
            for m in (c - w // 2, c, c + w // 2):
                alpha, res = _blend_residual(sigs[a].thumb, sigs[b].thumb, sigs[m].thumb)
                expect = (b - m) / (b - a)
                if res > blend or abs(alpha - expect) > 0.3:
                    ok = False
                    break
            if ok:
                best.append((far, a, b))
    for far, a, b in sorted(best, reverse=True):
        if taken[a:b + 1].any():
            continue
        # the fade proper: the frames between the two ends that change (trim the still parts)
        inner = np.flatnonzero(d[a + 1:b + 1] > 0.25 * max(d[a + 1:b + 1].max(), 1e-9)) + a + 1
        fa, fb = (int(inner[0]) - 1, int(inner[-1])) if len(inner) else (a, b)
        fades.append((fa, fb))
        taken[a:b + 1] = True
        cuts.append((fa + fb + 1) // 2)
    return sorted(cuts), sorted(fades)


def segment_ids(n_frames: int, cuts: list[int]) -> np.ndarray:
    """(T,) shot number of every frame (0 for the first shot)."""
    seg = np.zeros(n_frames, np.int32)
    for c in sorted(cuts):
        seg[c:] += 1
    return seg
