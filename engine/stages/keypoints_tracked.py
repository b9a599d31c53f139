"""``keypoints`` stage ``blazepose_tracked``: BlazePose on a crop that follows one chosen person.

- **Finding people** (first frame, after a cut, while the person is lost): BlazePose in single-image
  mode on the whole frame and on overlapping square tiles (two sizes), so people small in the frame or
  side by side in a wide frame are found (BlazePose alone sees the whole frame squeezed into its input
  and finds one person at most). Detections are merged by box overlap; the selection rule
  (``person``: largest | central | X,Y@FRAME, engine/tracking.py) picks one.
- **Keeping them**: each frame BlazePose (tracking mode) runs on a square crop around the box predicted
  from the previous frames; the crop moves only when the person leaves its centre, so mediapipe's own
  tracking stays consistent. Landmarks are mapped back to the full frame (x, y normalised to it; z, which
  mediapipe scales like x, rescaled too; world landmarks are metric and hip-centred, unchanged).
- **Identity jumps**: a detection whose position, torso size or clothing colour cannot be the tracked
  person's (engine/tracking.py ``identity_jump``) is rejected; the frame is lost, and the person is
  searched for again (every frame around where they should be, one BlazePose call on a wider crop; in
  the whole frame every ``reacquire_every`` frames, less often after a second)
  and taken back only when a candidate passes the same test. A hard cut (engine/cuts.py) drops the
  person and applies the selection rule to the new shot.

After the loop ``tracking_record()`` gives per-frame boxes (cx, cy, w, h normalised to the frame), lost
flags and the rejected detections;
the pipeline invalidates lost frames and warns with their frame ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register


@dataclass(frozen=True)
class TrackedConfig:
    person: str = "largest"            # largest | central | X,Y@FRAME (pixels of the displayed frame)
    model_complexity: int = 1
    smooth_landmarks: bool = True
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    crop_margin: float = 1.6           # crop side / the longer side of the person's box
    min_crop: int = 96                 # pixels
    recentre: float = 0.12             # move the crop when the box centre is this far off (fraction of the side)
    min_torso_visibility: float = 0.4  # mean visibility of shoulders and hips for a usable detection
    reacquire_every: int = 6           # frames between whole-frame searches while lost (first second)
    reacquire_every_late: int = 24     # ... after a second lost
    mask_outside: float = 0.0          # when the last whole-frame search found other people: grey out the crop
                                       # beyond this many times the predicted box (0: never). A tall person's
                                       # crop holds the people beside them, and BlazePose's detector would pick
                                       # the most prominent one; alone, a tight mask would only cut off limbs
    mask_outside_alone: float = 0.0    # the same when the search saw nobody else (0: no mask)
    # Both off by default: on the dev set a 1.3-1.6 mask cost 20-80 mm PA-MPJPE on clips 00 and 04 (a
    # tile's false second person turned it on); without it, a neighbour the crop tracker drifts to is
    # rejected by the identity test and the person taken back by the local search (slower, as right).
    local_search: float = 2.5          # while lost, each frame: a crop this many box sides wide around the prediction
    tile_sizes: tuple = (1.0, 0.6)     # square tiles, side as a fraction of the frame's shorter side
    position_tol: float = 1.2          # identity test, torso lengths per frame (engine/tracking.py JumpTest)
    scale_tol: float = 1.8
    appearance_tol: float = 0.6


def tiles(width: int, height: int, sizes: tuple = (1.0, 0.6), min_side: int = 96) -> list[tuple[int, int, int, int]]:
    """(x0, y0, w, h) regions to search: the whole frame, then square tiles overlapping by half."""
    out = [(0, 0, width, height)]
    for frac in sizes:
        s = int(round(min(width, height) * frac))
        if s < min_side:
            continue

        def starts(n: int) -> list[int]:
            if s >= n:
                return [0]
            k = int(np.ceil((n - s) / (s / 2))) + 1
            return sorted({int(round(v)) for v in np.linspace(0, n - s, k)})

        out += [(x, y, s, s) for y in starts(height) for x in starts(width) if (x, y, s, s) != (0, 0, width, height)]
    return out


def cut_region(rgb: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """The region (may reach outside the frame: black there)."""
    H, W = rgb.shape[:2]
    out = np.zeros((h, w, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


def mask_outside(img: np.ndarray, box: np.ndarray, x0: int, y0: int, factor: float) -> None:
    """Grey out (in place) the part of a crop at (x0, y0) outside ``box`` (cx, cy, w, h) grown by ``factor``."""
    h, w = img.shape[:2]
    bx0 = int(round(box[0] - factor * box[2] / 2)) - x0
    bx1 = int(round(box[0] + factor * box[2] / 2)) - x0
    by0 = int(round(box[1] - factor * box[3] / 2)) - y0
    by1 = int(round(box[1] + factor * box[3] / 2)) - y0
    keep = img[max(0, by0):max(0, by1), max(0, bx0):max(0, bx1)].copy()
    img[:] = 114
    img[max(0, by0):max(0, by1), max(0, bx0):max(0, bx1)] = keep


def to_frame(det, x0: float, y0: float, w: float, h: float, width: int, height: int):
    """A detection made on a region -> the same detection in the full frame's normalised coordinates."""
    from ..pose import Detection

    im = det.image.astype(np.float64).copy()
    im[:, 0] = (x0 + im[:, 0] * w) / width
    im[:, 1] = (y0 + im[:, 1] * h) / height
    im[:, 2] = im[:, 2] * w / width
    return Detection(image=im.astype(np.float32), world=det.world, visibility=det.visibility)


@register
class TrackedBlazePose:
    kind, name = "keypoints", "blazepose_tracked"
    Config = TrackedConfig

    def __init__(self, cfg: TrackedConfig):
        from ..pose import BlazePose
        from ..tracking import JumpTest, parse_person

        self.cfg = cfg
        self.choice = parse_person(cfg.person)
        self.test = JumpTest(position=cfg.position_tol, scale=cfg.scale_tol, appearance=cfg.appearance_tol)
        kw = dict(model_complexity=cfg.model_complexity, min_detection_confidence=cfg.min_detection_confidence,
                  min_tracking_confidence=cfg.min_tracking_confidence)
        self._crop_pose = BlazePose(static_image_mode=False, smooth_landmarks=cfg.smooth_landmarks, **kw)
        self._search_pose = BlazePose(static_image_mode=True, smooth_landmarks=False, **kw)
        self.i = -1
        self.pred = None            # tracking.BoxPredictor of the person (None: nobody chosen)
        self.torso = 0.0            # pixels, smoothed person size (tracking.person_size)
        self.ref_hist = None        # clothing colour
        self._n_ref = 0
        self._others = 0            # other people seen in the last whole-frame search
        self.crop: tuple[float, float, float] | None = None  # centre x, y, side
        self._prev_sig = None
        self.boxes: list[np.ndarray] = []
        self.lost: list[bool] = []
        self.events: list[dict] = []
        self.cuts: list[int] = []
        self.acquisitions: list[int] = []
        self._last_ok = -1          # last frame with an accepted detection
        self._last_search = -1      # last frame searched in full

    @classmethod
    def from_config(cls, cfg: TrackedConfig, device: str = "cpu") -> "TrackedBlazePose":  # noqa: ARG003
        return cls(cfg)

    @classmethod
    def describe(cls) -> dict:
        from ..pose import model_file, quality_status

        path = model_file(TrackedConfig().model_complexity)
        return {"weights": str(path) if path else None, "weights_found": bool(path and path.is_file()),
                "source": "mediapipe 0.10.21 wheel (crop tracking + tiled search)",
                "qualities": quality_status()}

    # ---- per frame --------------------------------------------------------------------------------
    def __call__(self, rgb: np.ndarray):
        from .. import cuts

        self.i += 1
        sig = cuts.signature(rgb)
        if self._prev_sig is not None and cuts.is_hard_cut(self._prev_sig, sig):
            self.cuts.append(self.i)
            self._forget()
        self._prev_sig = sig
        det = self._track(rgb) if self.pred is not None else None
        if det is None and self.pred is not None and self.cfg.local_search > 0:
            det = self._acquire(rgb, local=True)
        if det is None and self._search_due():
            det = self._acquire(rgb)
        if det is None and self.pred is not None:
            self.pred.miss()
        if det is not None:
            self._last_ok = self.i
        if self.choice.mode == "point" and self.i == self.choice.frame and self.i > 0:
            det = self._confirm_point(rgb, det)
        self.lost.append(det is None)
        H, W = rgb.shape[:2]
        self.boxes.append(self.pred.box / (W, H, W, H) if det is not None else np.full(4, np.nan))
        return det

    def _forget(self) -> None:
        self.pred, self.ref_hist, self.crop = None, None, None
        self._last_search = -1
        self._crop_pose.reset()

    def _search_due(self) -> bool:
        """At once when the person was just lost (or after a cut), then every few frames."""
        if self._last_search <= self._last_ok:
            return True
        every = self.cfg.reacquire_every if self.i - self._last_ok <= 30 else self.cfg.reacquire_every_late
        return self.i - self._last_search >= every

    def _measure(self, rgb: np.ndarray, det):
        from .. import tracking as tk
        from ..landmarks import TORSO

        H, W = rgb.shape[:2]
        if float(np.mean(det.visibility[list(TORSO)])) < self.cfg.min_torso_visibility:
            return None
        # the box around all 33 landmarks (hidden ones are predicted): its centre does not jump when the
        # legs go out of sight behind a cart, as a box around the visible points would
        box = tk.landmark_box(det.image, det.visibility, W, H, min_visibility=0.0)
        return box, tk.person_size(tk.torso_length(det.image, W, H), box), tk.torso_histogram(rgb, det.image)

    def _accept(self, det, box, torso, hist, fresh: bool, new_person: bool = False):
        """Take ``det`` as the person's: ``fresh`` restarts the motion model (after a search);
        ``new_person`` also restarts the clothing colour, which otherwise is a running mean (equal
        weights over the first 10 detections, then 10 % per frame)."""
        from ..tracking import BoxPredictor

        if fresh or self.pred is None:
            self.pred = BoxPredictor(box)
            self.torso = torso
        else:
            self.pred.update(box)
            self.torso = 0.8 * self.torso + 0.2 * torso
        if new_person or self.ref_hist is None:
            self.ref_hist, self._n_ref = hist, int(hist is not None)
        elif hist is not None:
            self._n_ref += 1
            a = max(0.1, 1.0 / self._n_ref)
            self.ref_hist = (1 - a) * self.ref_hist + a * hist
        return det

    def _crop_for(self, p: np.ndarray) -> tuple[int, int, int]:
        side = max(self.cfg.crop_margin * max(p[2], p[3]), self.cfg.min_crop)
        c = self.crop
        if c is None or np.hypot(p[0] - c[0], p[1] - c[1]) > self.cfg.recentre * c[2] \
                or not 0.8 <= side / c[2] <= 1.25:
            self.crop = c = (float(p[0]), float(p[1]), float(side))
        s = int(round(c[2]))
        return int(round(c[0] - s / 2)), int(round(c[1] - s / 2)), s

    def _track(self, rgb: np.ndarray):
        from .. import tracking as tk

        H, W = rgb.shape[:2]
        p = self.pred.predict()
        x0, y0, s = self._crop_for(p)
        img = cut_region(rgb, x0, y0, s, s)
        factor = self.cfg.mask_outside if self._others else self.cfg.mask_outside_alone
        if factor > 0:
            mask_outside(img, p, x0, y0, factor)
        raw = self._crop_pose(img)
        if raw is None:
            return None
        det = to_frame(raw, x0, y0, s, s, W, H)
        m = self._measure(rgb, det)
        if m is None:
            return None
        box, torso, hist = m
        # the colour reference of a person just chosen comes from one detection: not trusted for 3 frames
        app = tk.hist_distance(self.ref_hist, hist) if self._n_ref >= 3 else 0.0
        why = tk.identity_jump(p, self.torso, box, torso, app,
                               frames=self.pred.missed + 1, test=self.test)
        if why:
            self.events.append({"frame": self.i, "kind": "identity_jump", "why": why})
            self._crop_pose.reset()
            self.crop = None
            return None
        return self._accept(det, box, torso, hist, fresh=False)

    def search(self, rgb: np.ndarray, regions: list | None = None) -> list[tuple]:
        """Every person found in the frame (or in ``regions``): (detection, box, size, hist), duplicates merged."""
        from .. import tracking as tk

        H, W = rgb.shape[:2]
        found, scores = [], []
        for x0, y0, w, h in regions or tiles(W, H, tuple(self.cfg.tile_sizes), self.cfg.min_crop):
            raw = self._search_pose(cut_region(rgb, x0, y0, w, h))
            if raw is None:
                continue
            det = to_frame(raw, x0, y0, w, h, W, H)
            m = self._measure(rgb, det)
            if m is None:
                continue
            found.append((det, *m))
            scores.append(float(np.mean(det.visibility)) * m[0][3])
        keep = tk.dedupe([f[1] for f in found], scores)
        return [found[k] for k in keep]

    def _regions(self, W: int, H: int) -> list | None:
        """For a point choice: the tiles plus squares centred on the user's point (three sizes), so the
        person there is searched for in a region where they are the most prominent one."""
        if self.choice.mode != "point":
            return None
        extra = [(int(self.choice.x - s / 2), int(self.choice.y - s / 2), s, s)
                 for s in (int(min(W, H) * f) for f in (0.5, 0.75, 1.0)) if s >= self.cfg.min_crop]
        return tiles(W, H, tuple(self.cfg.tile_sizes), self.cfg.min_crop) + extra

    def _acquire(self, rgb: np.ndarray, local: bool = False):
        from .. import tracking as tk

        H, W = rgb.shape[:2]
        if local:
            p = self.pred.predict()
            side = int(round(max(self.cfg.local_search * max(p[2], p[3]), self.cfg.min_crop)))
            cands = self.search(rgb, [(int(p[0] - side / 2), int(p[1] - side / 2), side, side)])
        else:
            cands = self.search(rgb, self._regions(W, H) if self.pred is None else None)
            self.acquisitions.append(self.i)
            self._last_search = self.i
            self._others = max(0, len(cands) - 1)
        if not cands:
            return None
        new = self.pred is None
        if new:                 # a new choice: the user's rule
            k = tk.choose([c[1] for c in cands], self.choice, W, H)
        else:                   # taking the person back: only someone who passes the identity test
            p = self.pred.predict()
            costs, whys = [], []
            for det, box, torso, hist in cands:
                app = tk.hist_distance(self.ref_hist, hist)
                why = tk.identity_jump(p, self.torso, box, torso, app, frames=self.pred.missed + 1, test=self.test)
                whys.append(why)
                costs.append(np.inf if why else app + 0.1 * np.hypot(*(box[:2] - p[:2])) / max(self.torso, 1.0))
            k = int(np.argmin(costs)) if np.isfinite(min(costs)) else None
            if k is None and (not self.events or self.events[-1]["frame"] != self.i):
                self.events.append({"frame": self.i, "kind": "identity_jump", "why": whys[0]})
        if k is None:
            return None
        det, box, torso, hist = cands[k]
        self._crop_pose.reset()
        self.crop = None
        return self._accept(det, box, torso, hist, fresh=True, new_person=new)

    def _confirm_point(self, rgb: np.ndarray, det):
        """On the user's frame: make sure the tracked person is the one at the point; switch if not and
        mark the frames before as lost (they followed someone else)."""
        from .. import tracking as tk

        H, W = rgb.shape[:2]
        cands = self.search(rgb, self._regions(W, H))
        k = tk.choose([c[1] for c in cands], self.choice, W, H)
        if k is None:
            return det
        cdet, box, torso, hist = cands[k]
        if det is not None and tk.box_iou(box, self.pred.box) > 0.3:
            return det
        self.events.append({"frame": self.i, "kind": "person_switch",
                            "why": f"the person at {self.choice.x:.0f},{self.choice.y:.0f} was not the one "
                                   f"followed before frame {self.i}"})
        self.lost[:] = [True] * len(self.lost)
        self.boxes[:] = [np.full(4, np.nan)] * len(self.boxes)
        self._crop_pose.reset()
        self.crop = None
        return self._accept(cdet, box, torso, hist, fresh=True, new_person=True)

    # ---- after the loop ---------------------------------------------------------------------------
    def tracking_record(self) -> dict:
        return {"boxes": np.asarray(self.boxes, np.float32).reshape(-1, 4),
                "lost": np.asarray(self.lost, bool), "events": list(self.events),
                "cuts": list(self.cuts), "searches": len(self.acquisitions)}

    def close(self) -> None:
        self._crop_pose.close()
        self._search_pose.close()

    def __enter__(self) -> "TrackedBlazePose":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
