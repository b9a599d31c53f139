"""Choosing one person and keeping them: selection rule, box prediction, identity-jump test, lost ranges.

Pure numpy (the detector that feeds it is ``engine/stages/keypoints_tracked.py``). Boxes are
``(cx, cy, w, h)`` in pixels of the processed frame; landmarks are the track's normalised ``(33, 2|3)``.

Identity jumps: a new detection is not the tracked person when, against the box predicted from the
previous frames, its centre moved more than ``JumpTest.position`` person sizes per frame (``person_size``:
the torso length, at least 0.3 of the box), its size changed by more than ``JumpTest.scale`` (ratio), or its clothing colour (an HS histogram of the
torso) is too far from the person's (Bhattacharyya distance above ``JumpTest.appearance``; above
``JumpTest.appearance_soft`` together with a large move).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import EngineError
from .landmarks import LM

SHOULDERS = (LM["left_shoulder"], LM["right_shoulder"])
HIPS = (LM["left_hip"], LM["right_hip"])


# ---- the user's choice ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonChoice:
    """``largest`` (tallest box), ``central`` (nearest the frame's centre) or ``point`` (the person whose
    box is nearest ``(x, y)`` pixels of the displayed frame on output frame ``frame``; nobody when no box
    is within half a person's height of the point: the frames stay lost until the person is found)."""

    mode: str = "largest"
    x: float = 0.0
    y: float = 0.0
    frame: int = 0


_POINT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*(?:@\s*(\d+))?\s*$")


def parse_person(text: str) -> PersonChoice:
    """``largest`` | ``central`` | ``X,Y`` | ``X,Y@FRAME`` (pixels of the displayed frame, 0-based output
    frame; without ``@`` the first frame)."""
    t = text.strip().lower()
    if t in ("largest", "central"):
        return PersonChoice(t)
    m = _POINT.match(t)
    if not m:
        raise EngineError("usage", f"--person {text!r}: use largest, central or X,Y@FRAME "
                                   "(pixels of the video frame, frame number from 0).")
    return PersonChoice("point", float(m.group(1)), float(m.group(2)), int(m.group(3) or 0))


def scale_person(text: str, sx: float, sy: float) -> str:
    """The ``--person`` text with a point given in displayed-frame pixels scaled to processed-frame
    pixels (the video is decoded smaller than displayed when it exceeds ``--max-side``)."""
    c = parse_person(text)
    if c.mode != "point" or (sx == 1.0 and sy == 1.0):
        return text
    return f"{c.x * sx:.2f},{c.y * sy:.2f}@{c.frame}"


# ---- boxes ----------------------------------------------------------------------------------------
def landmark_box(image: np.ndarray, visibility: np.ndarray, width: int, height: int,
                 min_visibility: float = 0.3) -> np.ndarray:
    """(cx, cy, w, h) pixels around the landmarks seen with at least ``min_visibility`` (all if fewer than 6)."""
    xy = np.asarray(image, np.float64)[:, :2] * (width, height)
    ok = np.asarray(visibility) >= min_visibility
    if ok.sum() < 6:
        ok = np.isfinite(xy).all(1)
    lo, hi = xy[ok].min(0), xy[ok].max(0)
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0)])


def torso_length(image: np.ndarray, width: int, height: int) -> float:
    """Pixels from the shoulders' midpoint to the hips' midpoint (a pose-stable size of the person)."""
    xy = np.asarray(image, np.float64)[:, :2] * (width, height)
    return float(np.linalg.norm(xy[list(SHOULDERS)].mean(0) - xy[list(HIPS)].mean(0)))


def person_size(torso: float, box: np.ndarray) -> float:
    """A size that changes little with the pose: the torso length, but at least 0.3 of the box's longer
    side (a torso bent towards the camera looks short)."""
    return float(max(torso, 0.3 * max(box[2], box[3])))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9))


def choose(boxes: list[np.ndarray], choice: PersonChoice, width: int, height: int) -> int | None:
    """Index of the box the selection rule picks (None when there is none)."""
    if not boxes:
        return None
    B = np.asarray(boxes, np.float64)
    if choice.mode == "largest":
        return int(np.argmax(B[:, 3] * np.sqrt(B[:, 2] / np.maximum(B[:, 3], 1.0)).clip(0.5, 1.0)))
    if choice.mode == "central":
        d = np.hypot((B[:, 0] - width / 2) / width, (B[:, 1] - height / 2) / height)
        return int(np.argmin(d))
    if choice.mode == "point":
        # distance to the box (0 inside); among boxes containing the point, the one whose centre is nearest
        edge = np.hypot(np.maximum(np.abs(B[:, 0] - choice.x) - B[:, 2] / 2, 0.0),
                        np.maximum(np.abs(B[:, 1] - choice.y) - B[:, 3] / 2, 0.0))
        centre = np.hypot(B[:, 0] - choice.x, B[:, 1] - choice.y) / np.maximum(B[:, 3], 1.0)
        k = int(np.argmin(edge * 1000.0 + centre))
        # nobody at the point (not found in this frame): choose no one rather than someone else
        return k if edge[k] <= max(0.5 * B[k, 3], 30.0) else None
    raise ValueError(f"unknown person mode {choice.mode!r}: use largest, central or point")


def box_cover(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller box inside the other (1: one holds the other, e.g. half a person from a tile)."""
    iw = max(0.0, min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2))
    ih = max(0.0, min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2))
    return float(iw * ih / max(min(a[2] * a[3], b[2] * b[3]), 1e-9))


def dedupe(boxes: list[np.ndarray], scores: list[float], iou: float = 0.35, cover: float = 0.7) -> list[int]:
    """Indices of the boxes kept after non-maximum suppression (highest score first); a box mostly
    inside a kept one (``cover``) is the same person seen in part."""
    order = np.argsort(-np.asarray(scores, np.float64))
    keep: list[int] = []
    for i in order:
        if all(box_iou(boxes[i], boxes[k]) < iou and box_cover(boxes[i], boxes[k]) < cover for k in keep):
            keep.append(int(i))
    return keep


# ---- motion model ---------------------------------------------------------------------------------
class BoxPredictor:
    """Constant-velocity prediction of (cx, cy, w, h), velocity smoothed over the last frames."""

    def __init__(self, box: np.ndarray, damping: float = 0.5):
        self.box = np.asarray(box, np.float64).copy()
        self.vel = np.zeros(4)
        self.damping = damping
        self.missed = 0

    def predict(self) -> np.ndarray:
        """The box expected in the next frame (velocity decays while the person is missed)."""
        k = self.missed + 1
        v = self.vel * (0.8 ** self.missed)
        p = self.box + k * v
        p[2:] = np.maximum(p[2:], 1.0)
        return p

    def update(self, box: np.ndarray) -> None:
        box = np.asarray(box, np.float64)
        step = (box - self.box) / (self.missed + 1)
        self.vel = self.damping * self.vel + (1 - self.damping) * step
        self.box = box.copy()
        self.missed = 0

    def miss(self) -> None:
        self.missed += 1


# ---- appearance -----------------------------------------------------------------------------------
def torso_histogram(rgb: np.ndarray, image_lm: np.ndarray, bins: tuple[int, int] = (12, 6)) -> np.ndarray | None:
    """Normalised hue-saturation histogram of the torso quad (shoulders-hips box, shrunk a little)."""
    import cv2

    H, W = rgb.shape[:2]
    xy = np.asarray(image_lm, np.float64)[list(SHOULDERS) + list(HIPS), :2] * (W, H)
    if not np.isfinite(xy).all():
        return None
    c = xy.mean(0)
    lo, hi = c + 0.8 * (xy.min(0) - c), c + 0.8 * (xy.max(0) - c)
    x0, y0 = int(max(0, np.floor(lo[0]))), int(max(0, np.floor(lo[1])))
    x1, y1 = int(min(W, np.ceil(hi[0]))), int(min(H, np.ceil(hi[1])))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    h = cv2.calcHist([hsv], [0, 1], None, list(bins), [0, 180, 0, 256]).ravel().astype(np.float64)
    s = h.sum()
    return h / s if s > 0 else None


def hist_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Bhattacharyya distance of two normalised histograms (0 same .. 1 disjoint); 0 if one is unknown."""
    if a is None or b is None:
        return 0.0
    bc = float(np.sum(np.sqrt(a * b)))
    return float(np.sqrt(max(0.0, 1.0 - bc)))


# ---- identity jumps -------------------------------------------------------------------------------
@dataclass(frozen=True)
class JumpTest:
    position: float = 1.2        # torso lengths the centre may move per frame beyond the prediction
    scale: float = 1.8           # largest size ratio between frames
    appearance: float = 0.6      # Bhattacharyya distance that alone says: someone else
    appearance_soft: float = 0.4  # ... that together with half the position limit says so
    appearance_move: float = 0.25  # share of the position limit a move must exceed for colour to count


def identity_jump(pred: np.ndarray, pred_torso: float, box: np.ndarray, torso: float, appearance: float,
                  frames: int = 1, test: JumpTest = JumpTest()) -> str | None:
    """Why the detection ``box`` (torso length ``torso``) cannot be the person predicted at ``pred``
    ``frames`` frames after the last accepted one; None when it can."""
    ref = max(pred_torso, 1.0)
    move = float(np.hypot(*(np.asarray(box[:2]) - pred[:2]))) / ref
    allowed = test.position * (1.0 + 0.5 * (max(frames, 1) - 1))
    if move > allowed:
        return f"position (moved {move:.1f} sizes)"
    ratio = max(torso, 1.0) / ref
    limit = test.scale ** max(1.0, np.sqrt(frames))
    if ratio > limit or ratio < 1.0 / limit:
        return f"scale (x{ratio:.2f})"
    # colour alone does not overrule a detection exactly where the person should be (lighting, a first
    # reference taken from a poor detection); with some move it does
    if (appearance > test.appearance and move > test.appearance_move * allowed) or \
            (appearance > test.appearance_soft and move > 0.5 * allowed):
        return f"appearance (distance {appearance:.2f})"
    return None


# ---- lost ranges ----------------------------------------------------------------------------------
def ranges(flags: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of the runs of True in ``flags``."""
    f = np.asarray(flags, bool)
    if not f.any():
        return []
    d = np.diff(np.r_[0, f.astype(np.int8), 0])
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def describe_ranges(rs: list[tuple[int, int]], frame_index: np.ndarray | None = None, limit: int = 8) -> str:
    """``"12-30, 41, 50-52"`` (source frame numbers when ``frame_index`` is given)."""
    fi = (lambda i: int(frame_index[i])) if frame_index is not None else (lambda i: i)
    parts = [f"{fi(a)}" if a == b else f"{fi(a)}-{fi(b)}" for a, b in rs[:limit]]
    if len(rs) > limit:
        parts.append(f"and {len(rs) - limit} more")
    return ", ".join(parts)
