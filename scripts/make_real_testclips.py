"""Test clips for person selection, tracking and cut detection made from the shared real footage.

    .venv/bin/python -m scripts.make_real_testclips --out .cache/real

Writes (never into the repository: the footage belongs to third parties, see the videos' README):

- ``side_<a>_<b>.mp4``: two single-person clips side by side in one wide frame (each scaled to half the
  width), so each person is about a third of the frame's height or less;
- ``cut_<a>_<b>.mp4``: clip a then clip b (a hard cut);
- ``fade_<a>_<b>.mp4``: clip a cross-fading into clip b;
- ``clips.json``: for every clip its frame count, fps and the frames where a new shot starts (for a
  cross-fade, the middle frame of the fade).
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

VIDEOS = Path("/work/shared/data/videos")


def read_frames(path: Path, fps: float, seconds: float, size: tuple[int, int], start: float = 0.0) -> list[np.ndarray]:
    """RGB frames resampled to ``fps`` (nearest earlier frame) and resized to ``size`` (w, h)."""
    import av
    import cv2

    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(float(f.time or 0.0), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    t0 = frames[0][0] + start
    j = 0
    for i in range(int(round(seconds * fps))):
        t = t0 + i / fps
        while j + 1 < len(frames) and frames[j + 1][0] <= t + 1e-6:
            j += 1
        out.append(cv2.resize(frames[j][1], size, interpolation=cv2.INTER_AREA))
    return out


def write(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "20", "preset": "ultrafast"}
        for im in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".cache/real")
    ap.add_argument("--videos", default=str(VIDEOS))
    ap.add_argument("--fps", type=float, default=25.0)
    args = ap.parse_args(argv)
    src, out, fps = Path(args.videos), Path(args.out), args.fps
    out.mkdir(parents=True, exist_ok=True)
    clips: dict[str, dict] = {}
    dance, taiji, basket = (src / "v07_openpose_dance.avi", src / "v04_hybrik_taiji.mp4",
                            src / "v03_glamr_basketball.mp4")
    # side by side: 1280x360, each person about a third of the height
    a = read_frames(dance, fps, 4.0, (640, 360))
    b = read_frames(taiji, fps, 4.0, (640, 360))
    write(out / "side_dance_taiji.mp4", [np.hstack([x, y]) for x, y in zip(a, b)], fps)
    clips["side_dance_taiji.mp4"] = {"frames": len(a), "fps": fps, "cuts": [],
                                     "people": {"left": "dance", "right": "taiji"}}
    # hard cut: taiji 3 s then basketball 3 s
    a = read_frames(taiji, fps, 3.0, (960, 540))
    b = read_frames(basket, fps, 3.0, (960, 540))
    write(out / "cut_taiji_basket.mp4", a + b, fps)
    clips["cut_taiji_basket.mp4"] = {"frames": len(a) + len(b), "fps": fps, "cuts": [len(a)]}
    # cross-fade over 0.6 s: taiji into dance
    a = read_frames(taiji, fps, 3.0, (960, 540))
    b = read_frames(dance, fps, 3.0, (960, 540))
    n = int(round(0.6 * fps))
    fade = [((1 - (k + 1) / (n + 1)) * a[len(a) - n + k] + (k + 1) / (n + 1) * b[k]).astype(np.uint8)
            for k in range(n)]
    frames = a[:-n] + fade + b[n:]
    write(out / "fade_taiji_dance.mp4", frames, fps)
    clips["fade_taiji_dance.mp4"] = {"frames": len(frames), "fps": fps, "cuts": [len(a) - n + n // 2],
                                     "fade": [len(a) - n, len(a) - 1]}
    (out / "clips.json").write_text(json.dumps(clips, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(clips, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
