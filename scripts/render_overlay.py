"""Look at a result as a user would: the skeleton drawn over the footage, plus a side view of the world.

    python -m scripts.render_overlay RESULT.npz [--video VIDEO] --out preview.mp4 [--sheet sheet.png] [--mesh]

The left panel projects ``joints_world`` through the result's camera (intrinsics + per-frame
extrinsics) onto the video frames, with the followed person's box (``person_box``) and a red frame and
"lost" on frames without a reliable detection (``lost`` / ``valid``); the middle panel shows the world
skeleton from the side (X right, Z up) over the ground line, scaled so that a body below the floor stays
in view (a floating, sinking or backwards-kneed body is easy to spot); the right panel is the top view
(X right, Y away from the first camera): the root's path on the ground for the current shot, the path
so far brighter, and the camera (a triangle pointing where it looks).
``--mesh`` also draws the result's body mesh (``mesh_*``) over the footage, skinned in numpy exactly as
docs/result_format.md defines it (what Blender's Armature modifier computes on the imported armature):
flat-shaded, back faces culled, far faces first, half transparent.
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


def skin(r, t: int) -> np.ndarray:
    """(V, 3) the body mesh of frame t: linear blend skinning by the FK of the result's rotations."""
    from scipy.spatial.transform import Rotation

    rest = r["rest_offsets"].astype(np.float64)
    R = Rotation.from_quat(r["rotations"][t].astype(np.float64), scalar_first=True).as_matrix()[None]   # (1, J, 3, 3)
    Rw, P = sk.forward_kinematics(R, r["root_translation"][t:t + 1].astype(np.float64), rest)
    p0 = sk.rest_positions(rest)
    v = r["mesh_vertices"].astype(np.float64)
    idx, w = r["mesh_weight_joints"], r["mesh_weights"].astype(np.float64)
    per = np.einsum("vkab,vkb->vka", Rw[0][idx], v[:, None] - p0[idx]) + P[0][idx]      # (V, K, 3)
    return np.einsum("vk,vki->vi", w, per)


def draw_mesh(img: np.ndarray, K: np.ndarray, E: np.ndarray, verts: np.ndarray, faces: np.ndarray,
              scale_xy, alpha: float = 0.75) -> None:
    """Flat-shaded triangles (light from the camera), back faces culled, painter's order, blended."""
    pc = verts @ E[:3, :3].T + E[:3, 3]                                                  # (V, 3) camera
    uv = (pc[:, :2] / np.maximum(pc[:, 2:3], 1e-6) * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]) * scale_xy
    tri = pc[faces]                                                                      # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    centre = tri.mean(1)
    facing = -np.einsum("fi,fi->f", n, centre / np.linalg.norm(centre, axis=1, keepdims=True))
    keep = np.flatnonzero((facing > 0) & (tri[:, :, 2].min(1) > 0.05))
    keep = keep[np.argsort(-centre[keep, 2])]
    shade = 0.25 + 0.75 * facing[keep]
    over = img.copy()
    pts = (uv[faces[keep]] * 16).astype(np.int32)                                       # 4 fractional bits
    for poly, c in zip(pts, shade):
        cv2.fillPoly(over, [poly], (int(110 * c), int(200 * c), int(255 * c)), cv2.LINE_AA, shift=4)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, list(pts), 255, shift=4)
    m = mask > 0
    img[m] = (alpha * over[m] + (1 - alpha) * img[m]).astype(np.uint8)


def side_view(P: np.ndarray, contacts: np.ndarray | None, names, parents, size: int, span: np.ndarray) -> np.ndarray:
    img = np.full((size, size, 3), 30, np.uint8)
    (x0, x1), (z0, z1) = span
    s = 0.86 * size / max(x1 - x0, z1 - z0, 1e-3)
    base = size * 0.93 + z0 * s   # the floor's row: a body below it stays inside the panel
    to_px = lambda x, z: np.stack([(x - (x0 + x1) / 2) * s + size / 2, base - z * s], -1)  # noqa: E731
    g = to_px(np.array([x0 - 5, x1 + 5]), np.zeros(2))
    cv2.line(img, tuple(int(v) for v in g[0]), tuple(int(v) for v in g[1]), (90, 160, 90), 1)
    uv = to_px(P[:, 0], P[:, 2])
    draw_skeleton(img, uv, names, parents)
    if contacts is not None:
        for k, n in enumerate(sk.CONTACT_JOINTS):
            if contacts[k] and n in names:
                q = uv[list(names).index(n)]
                cv2.circle(img, (int(q[0]), int(q[1])), 6, (80, 255, 80), 1, cv2.LINE_AA)
    low = float(P[:, 2].min())
    if low < -0.03:
        cv2.putText(img, f"{-low * 100:.0f} cm below the floor", (8, size - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 90, 90), 1)
    cv2.putText(img, "side (X, Z)", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1)
    return img


def camera_centre(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World position of the camera and its viewing direction from a world-to-camera 4x4."""
    R, t = E[:3, :3], E[:3, 3]
    return -R.T @ t, R.T @ np.array([0.0, 0.0, 1.0])


def top_span(root: np.ndarray, cams: np.ndarray) -> np.ndarray:
    pts = np.concatenate([root[:, :2], cams[:, :2]])
    pts = pts[np.isfinite(pts).all(1)]
    lo, hi = pts.min(0) - 0.5, pts.max(0) + 0.5
    return np.stack([lo, hi], 1)


def top_view(P: np.ndarray, path: np.ndarray, upto: int, cam: tuple[np.ndarray, np.ndarray], names, parents,
             size: int, span: np.ndarray) -> np.ndarray:
    """From above: X right, Y up the panel (away from the camera)."""
    img = np.full((size, size, 3), 24, np.uint8)
    (x0, x1), (y0, y1) = span
    s = 0.9 * size / max(x1 - x0, y1 - y0, 1e-3)
    to_px = lambda x, y: np.stack([(x - (x0 + x1) / 2) * s + size / 2, size / 2 - (y - (y0 + y1) / 2) * s], -1)  # noqa: E731
    step = 1.0 if max(x1 - x0, y1 - y0) < 12 else 5.0
    for gx in np.arange(np.floor(x0 / step) * step, x1 + step, step):
        a = to_px(np.array([gx, gx]), np.array([y0, y1]))
        cv2.line(img, tuple(int(v) for v in a[0]), tuple(int(v) for v in a[1]), (45, 45, 45), 1)
    for gy in np.arange(np.floor(y0 / step) * step, y1 + step, step):
        a = to_px(np.array([x0, x1]), np.array([gy, gy]))
        cv2.line(img, tuple(int(v) for v in a[0]), tuple(int(v) for v in a[1]), (45, 45, 45), 1)
    uv = to_px(path[:, 0], path[:, 1]).astype(np.int32)
    if len(uv) > 1:
        cv2.polylines(img, [uv], False, (90, 90, 120), 1, cv2.LINE_AA)
        cv2.polylines(img, [uv[:upto + 1]], False, (120, 200, 255), 2, cv2.LINE_AA)
    draw_skeleton(img, to_px(P[:, 0], P[:, 1]), names, parents, thick=1)
    c, d = cam
    if np.isfinite(c).all():
        q = to_px(np.array([c[0]]), np.array([c[1]]))[0]
        dd = d[:2] / max(np.linalg.norm(d[:2]), 1e-6)
        tip = q + np.array([dd[0], -dd[1]]) * 14
        side = np.array([dd[1], dd[0]]) * 7
        tri = np.array([q + side, q - side, tip], np.int32)
        cv2.fillPoly(img, [tri], (255, 220, 80))
    cv2.putText(img, f"top (X, Y), grid {step:g} m", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1)
    return img


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result")
    ap.add_argument("--video", default=None, help="defaults to the video named in the result")
    ap.add_argument("--out", default=None, help="preview video (.mp4)")
    ap.add_argument("--sheet", default=None, help="contact sheet PNG of a few frames")
    ap.add_argument("--sheet-frames", type=int, default=6)
    ap.add_argument("--mesh", action="store_true", help="draw the body mesh (mesh_* members) over the footage")
    args = ap.parse_args(argv)

    r = read_result(args.result)
    if args.mesh and "mesh_vertices" not in r:
        ap.error(f"{args.result} has no body mesh (mesh_* members)")
    names = [str(n) for n in r["joint_names"]]
    parents = [int(p) for p in r["parents"]]
    P = r["joints_world"].astype(np.float64)
    K, E = r["camera_intrinsics"].astype(np.float64), r["camera_extrinsics"].astype(np.float64)
    W, H = (int(v) for v in r["image_size"])
    index_of = {int(f): t for t, f in enumerate(r["frame_index"])}
    span = np.array([[P[..., 0].min(), P[..., 0].max()], [min(0.0, P[..., 2].min()), max(P[..., 2].max(), 1.0)]])
    root = r["root_translation"].astype(np.float64)
    shot = r["shot"] if "shot" in r else np.zeros(len(P), np.int32)
    lost = (r["lost"] | ~r["valid"]) if "lost" in r else ~r["valid"]
    box = r["person_box"] if "person_box" in r else None
    cams = [camera_centre(e) for e in E]
    tspan = top_span(root, np.array([c for c, _ in cams]))
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
            if args.mesh:
                draw_mesh(img, K, E[t], skin(r, t), r["mesh_faces"], np.array([sx, sy]))
            draw_skeleton(img, uv, names, parents, thick=max(1, img.shape[0] // (480 if args.mesh else 240)))
            th = max(2, img.shape[0] // 240)
            if box is not None and np.isfinite(box[t]).all():
                b = box[t] * [sx, sy, sx, sy]
                cv2.rectangle(img, (int(b[0] - b[2] / 2), int(b[1] - b[3] / 2)), (int(b[0] + b[2] / 2), int(b[1] + b[3] / 2)),
                              (255, 230, 0), th)
            if lost[t]:
                cv2.rectangle(img, (0, 0), (img.shape[1] - 1, img.shape[0] - 1), (255, 40, 40), 4 * th)
                cv2.putText(img, "lost", (10, 40 * th), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * th, (255, 60, 60), th)
            cv2.putText(img, f"frame {fr.index}  shot {int(shot[t])}", (10, img.shape[0] - 12 * th),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4 * th, (255, 255, 255), th)
            scale = panel_h / img.shape[0]
            left = cv2.resize(img, (int(img.shape[1] * scale) // 2 * 2, panel_h), interpolation=cv2.INTER_AREA)
            in_shot = np.flatnonzero(shot == shot[t])
            frame = np.concatenate([left, side_view(P[t], r["foot_contacts"][t], names, parents, panel_h, span),
                                    top_view(P[t], root[in_shot], t - in_shot[0], cams[t], names, parents, panel_h,
                                             tspan)], 1)
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
