"""Look at a result as a user would: the skeleton drawn over the footage, plus a side view of the world.

    python -m scripts.render_overlay RESULT.npz [--video VIDEO] --out preview.mp4 [--sheet sheet.png]

The left panel projects ``joints_world`` through the result's camera (intrinsics + per-frame
extrinsics) onto the video frames; the right panel shows the world skeleton from the side (X right,
Z up) over the ground line, so a floating, sinking or backwards-kneed body is easy to spot.
Needs the engine environment (numpy, OpenCV, PyAV).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


from engine import skeleton as sk
from engine.result import read_result
from engine.video import VideoReader

LEFT = (60, 120, 255)   # BGR-ish in RGB images: left side blue
RIGHT = (255, 90, 60)   # right side red
MID = (240, 240, 240)


def _colour(name: str):
    return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else MID


def project(K: np.ndarray, E: np.ndarray, P: np.ndarray) -> np.ndarray:
    pc = P @ E[:3, :3].T + E[:3, 3]
    uv = pc[:, :2] / np.maximum(pc[:, 2:3], 1e-6)
    return uv * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]


def draw_skeleton(img: np.ndarray, uv: np.ndarray, names, parents, thick: int = 2) -> None:
    for j, p in enumerate(parents):
        if p < 0:
            continue
        a, b = uv[p], uv[j]
        if np.all(np.isfinite([a, b])):
            cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), _colour(names[j]), thick, cv2.LINE_AA)
    for j, q in enumerate(uv):
        if np.all(np.isfinite(q)):
            cv2.circle(img, (int(q[0]), int(q[1])), thick + 1, _colour(names[j]), -1, cv2.LINE_AA)


def side_view(P: np.ndarray, contacts: np.ndarray | None, names, parents, size: int, span: np.ndarray) -> np.ndarray:
    img = np.full((size, size, 3), 30, np.uint8)
    (x0, x1), (z0, z1) = span
    s = 0.9 * size / max(x1 - x0, z1 - z0, 1e-3)
    to_px = lambda x, z: np.stack([(x - (x0 + x1) / 2) * s + size / 2, size * 0.92 - (z - 0.0) * s], -1)  # noqa: E731
    g = to_px(np.array([x0 - 5, x1 + 5]), np.zeros(2))
    cv2.line(img, tuple(int(v) for v in g[0]), tuple(int(v) for v in g[1]), (90, 160, 90), 1)
    uv = to_px(P[:, 0], P[:, 2])
    draw_skeleton(img, uv, names, parents)
    if contacts is not None:
        for k, n in enumerate(sk.CONTACT_JOINTS):
            if contacts[k] and n in names:
                q = uv[list(names).index(n)]
                cv2.circle(img, (int(q[0]), int(q[1])), 6, (80, 255, 80), 1, cv2.LINE_AA)
    cv2.putText(img, "world, seen from the camera side (X, Z)", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1)
    return img


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result")
    ap.add_argument("--video", default=None, help="defaults to the video named in the result")
    ap.add_argument("--out", default=None, help="preview video (.mp4)")
    ap.add_argument("--sheet", default=None, help="contact sheet PNG of a few frames")
    ap.add_argument("--sheet-frames", type=int, default=6)
    args = ap.parse_args(argv)

    r = read_result(args.result)
    names = [str(n) for n in r["joint_names"]]
    parents = [int(p) for p in r["parents"]]
    P = r["joints_world"].astype(np.float64)
    K, E = r["camera_intrinsics"].astype(np.float64), r["camera_extrinsics"].astype(np.float64)
    W, H = (int(v) for v in r["image_size"])
    index_of = {int(f): t for t, f in enumerate(r["frame_index"])}
    span = np.array([[P[..., 0].min(), P[..., 0].max()], [0.0, max(P[..., 2].max(), 1.0)]])
    video = args.video or str(r["video_path"])
    T = len(P)
    pick = set(np.linspace(0, T - 1, args.sheet_frames).round().astype(int).tolist()) if args.sheet else set()
    tiles: list[np.ndarray] = []
    writer = None
    panel_h = 480
    with VideoReader(video, max_side=None) as reader:
        for fr in reader:
            t = index_of.get(fr.index)
            if t is None:
                continue
            img = np.ascontiguousarray(fr.image)
            sx, sy = img.shape[1] / W, img.shape[0] / H
            uv = project(K, E[t], P[t]) * [sx, sy]
            draw_skeleton(img, uv, names, parents, thick=max(2, img.shape[0] // 240))
            if not r["valid"][t]:
                cv2.putText(img, "no detection", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 60, 60), 2)
            scale = panel_h / img.shape[0]
            left = cv2.resize(img, (int(img.shape[1] * scale) // 2 * 2, panel_h), interpolation=cv2.INTER_AREA)
            frame = np.concatenate([left, side_view(P[t], r["foot_contacts"][t], names, parents, panel_h, span)], 1)
            if args.out:
                if writer is None:
                    import av

                    writer = av.open(args.out, "w")
                    st = writer.add_stream("libx264", rate=int(round(float(r["fps"]))))
                    st.width, st.height, st.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
                for pkt in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    writer.mux(pkt)
            if t in pick:
                tiles.append(frame)
    if writer is not None:
        for pkt in st.encode():
            writer.mux(pkt)
        writer.close()
    if args.sheet and tiles:
        rows = [np.concatenate(tiles[i:i + 2], 1) for i in range(0, len(tiles) - 1, 2)]
        cv2.imwrite(args.sheet, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
