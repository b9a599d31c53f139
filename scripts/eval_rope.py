"""Rope against the v1 body solve and raw BlazePose on the synthetic dev set (body pose only).

    .venv/bin/python -m scripts.eval_rope [--devset /work/main/.cache/devset] [--weights models/rope]
        [--cache .cache/devset_landmarks] [--keypoints-quality full|heavy] [--json OUT.json] [--speed]
        [--keypoint-speed] [--refine] [--skip-v1]

Per clip, BlazePose runs once as the engine runs it (``make_detector_data.detect``: VideoReader ->
BlazePose -> LandmarkBuffer) and its track is cached in ``--cache`` (keyed by the clip's size and
modification time and the BlazePose model: ``--keypoints-quality heavy`` is BlazePose Heavy, the
engine's option of the same name, installed by ``engine/setup_env.py --heavy-only``). The three
methods then read the same track:

- ``blazepose_raw``: landmarks mapped to vm24 joints (``bench_accuracy.blazepose_to_vm24``; missed
  frames hold the last pose);
- ``v1_solve``: the engine's v1 body stage as ``engine/pipeline.py`` runs it (gap filling, 0.17 s
  Savitzky-Golay, ``solve.measure_body`` + ``solve.solve_body`` with the default options);
- ``rope``: ``engine.rope.Rope.predict`` on the raw track;
- ``rope_refined`` (``--refine``): Rope, then the 2D alignment refinement (``engine.rope.refine2d``,
  the body stage's ``refine`` option) with its default settings.

All are scored in the camera frame (OpenCV axes), as the field reports body pose: MPJPE after
subtracting the pelvis, PA-MPJPE per frame, PA-MPJPE over the joints the ground truth flags as hidden
by an occluder (``occluded``) and over all hidden joints (``occluded | self_occluded``), and jitter
(``scripts.vmkit.metrics.jitter``, 10 m/s^3) of the pelvis-relative joints (no trajectory: the body
pose alone; ``jitter_gt`` is the ground truth's). Nothing here is used for training or for picking
checkpoints. ``--speed`` also times Rope batched on one thread. ``--keypoint-speed`` times BlazePose
Full against Heavy per frame on the dev clips' frames (decoded once, the two models alternating in
rounds on the same frames, so a busy machine slows both alike): the ratio is what to read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from engine import skeleton as sk
from engine import solve, trajectory
from engine.rope import Rope
from engine.rope.infer import DEFAULT_DIR
from engine.rope.refine2d import refine_2d
from engine.geometry.frames import BC_TO_CV as M_BC_TO_CV
from scripts.bench_accuracy import _fill, blazepose_to_vm24
from scripts.vmkit import metrics

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("blazepose_raw", "v1_solve", "rope", "rope_refined")
KEYS = ("mpjpe", "pa_mpjpe", "pa_mpjpe_occluded", "pa_mpjpe_hidden", "jitter", "jitter_gt")


def cache_path(mp4: Path, cache: Path, model_complexity: int = 1) -> Path:
    """The cached track of one clip for one BlazePose model (complexity 1 Full, 2 Heavy)."""
    st = mp4.stat()
    return cache / f"{mp4.stem}_{st.st_size}_{int(st.st_mtime)}_mc{int(model_complexity)}.npz"


def cached_track(mp4: Path, cache: Path, model_complexity: int = 1) -> dict[str, np.ndarray]:
    path = cache_path(mp4, cache, model_complexity)
    if path.exists():
        d = np.load(path, allow_pickle=False)
        return {k: d[k] for k in d.files}
    from scripts.make_detector_data import detect

    track, reader = detect(mp4, model_complexity)
    out = {"image": track.image, "world": track.world, "visibility": track.visibility, "valid": track.valid,
           "frame_index": track.frame_index, "times": track.times,
           "image_size": np.array([reader.width, reader.height], np.int32)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    return out


def v1_body(tr: dict[str, np.ndarray], fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The v1 body stage as engine/pipeline.py runs it -> rotations, root (body-camera), rest offsets."""
    valid = tr["valid"]
    world = trajectory.fill_gaps(tr["world"], valid)
    vis = np.where(valid[:, None], tr["visibility"], 0.0).astype(np.float32)
    world = trajectory.smooth(world, fps, 0.17)
    Y = solve.to_body_camera(world)
    body = solve.measure_body(Y[valid], vis[valid])
    R, root = solve.solve_body(Y, np.maximum(vis, 0.05 * valid[:, None]), body, solve.SolveConfig())
    return R, root, body.rest_offsets


def joints_camera(R: np.ndarray, root: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Body-camera FK -> joints in camera axes (OpenCV), hip-centred (T, 24, 3)."""
    _, P = sk.forward_kinematics(R.astype(np.float64), root.astype(np.float64), rest.astype(np.float64))
    return P @ M_BC_TO_CV.T


def score(pred: np.ndarray, gt: np.ndarray, occ: np.ndarray, hidden: np.ndarray, fps: float) -> dict[str, float]:
    s, Rr, t = metrics.similarity_transform(pred, gt)
    pa = np.linalg.norm(metrics.apply_similarity(s, Rr, t, pred) - gt, axis=-1) * 1000.0          # (T, J)
    rel = lambda P: P - P[:, :1]  # noqa: E731
    out = {"mpjpe": metrics.mpjpe(pred, gt, 0), "pa_mpjpe": float(pa.mean()),
           "jitter": float(metrics.jitter(rel(pred), fps)), "jitter_gt": float(metrics.jitter(rel(gt), fps))}
    if occ.any():
        out["pa_mpjpe_occluded"] = float(pa[occ].mean())
    if hidden.any():
        out["pa_mpjpe_hidden"] = float(pa[hidden].mean())
    out["_n_occluded"], out["_n_hidden"], out["_n"] = int(occ.sum()), int(hidden.sum()), int(pa.size)
    out["_pa_sum_occluded"], out["_pa_sum_hidden"] = float(pa[occ].sum()), float(pa[hidden].sum())
    return out


def speed(rope: Rope, frames: int = 4096, repeat: int = 3) -> float:
    rng = np.random.default_rng(0)
    img = rng.random((frames, 33, 3)).astype(np.float32)
    wld = (rng.normal(size=(frames, 33, 3)) * 0.3).astype(np.float32)
    vis = rng.random((frames, 33)).astype(np.float32)
    rope.predict(img[:64], wld[:64], vis[:64], np.ones(64, bool), (1280, 720))
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        rope.predict(img, wld, vis, np.ones(frames, bool), (1280, 720), batch=1024)
        best = min(best, time.perf_counter() - t)
    return frames / best


def keypoint_speed(clips: list[Path], *, rounds: int = 3, max_frames: int = 240) -> dict[str, float]:
    """Milliseconds per frame of BlazePose Full and Heavy (tracking mode, as the engine runs it) on the
    same decoded frames; each round runs Full then Heavy on every clip (fresh models), best round kept."""
    from engine import video
    from engine.pose import QUALITIES, BlazePose

    frames: list[list[np.ndarray]] = []
    total = 0
    for mp4 in clips:
        with video.VideoReader(str(mp4)) as reader:
            frames.append([fr.image for fr in reader])
        total += len(frames[-1])
        if total >= max_frames:
            break
    best = {q: float("inf") for q in QUALITIES}
    for _ in range(rounds):
        for quality, complexity in QUALITIES.items():
            t, n = 0.0, 0
            for clip in frames:
                with BlazePose(model_complexity=complexity) as bp:
                    bp(clip[0])   # first frame: model warm-up and detector, not timed
                    t0 = time.perf_counter()
                    for rgb in clip[1:]:
                        bp(rgb)
                    t += time.perf_counter() - t0
                    n += len(clip) - 1
            best[quality] = min(best[quality], 1000.0 * t / max(n, 1))
    return {"full_ms": best["full"], "heavy_ms": best["heavy"], "ratio": best["heavy"] / best["full"],
            "frames": float(sum(len(c) - 1 for c in frames)), "rounds": float(rounds)}


def table(title: str, rows: dict[str, list[dict]]) -> str:
    lines = [f"\n### {title}", "| method | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    for m, rs in rows.items():
        vals = []
        for k in KEYS:
            if k in ("pa_mpjpe_occluded", "pa_mpjpe_hidden"):  # pooled over joints, not averaged over clips
                n = sum(r[f"_n_{k.split('_')[-1]}"] for r in rs)
                vals.append(sum(r[f"_pa_sum_{k.split('_')[-1]}"] for r in rs) / n if n else float("nan"))
            else:
                vals.append(float(np.mean([r[k] for r in rs])))
        lines.append(f"| {m} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devset", type=Path, default=Path("/work/main/.cache/devset"))
    ap.add_argument("--weights", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "devset_landmarks")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--rope-smoothing", type=float, default=0.25, help="seconds (Rope.predict smoothing)")
    ap.add_argument("--skip-v1", action="store_true", help="only raw BlazePose and Rope (faster)")
    ap.add_argument("--refine", action="store_true", help="also score Rope + the 2D alignment refinement")
    ap.add_argument("--keypoints-quality", choices=("full", "heavy"), default="full",
                    help="BlazePose model the tracks come from (heavy: engine/setup_env.py --heavy-only)")
    ap.add_argument("--keypoint-speed", action="store_true",
                    help="also time BlazePose Full vs Heavy per frame on the dev clips (needs Heavy)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    clips = sorted(p for p in args.devset.glob("*.mp4") if (args.devset / f"{p.stem}_gt.npz").exists())
    if not clips:
        print(f"no clips in {args.devset}", file=sys.stderr)
        return 2
    from engine.pose import QUALITIES

    complexity = QUALITIES[args.keypoints_quality]
    rope = Rope.load(args.weights)
    per_clip = []
    for mp4 in clips:
        gt = np.load(args.devset / f"{mp4.stem}_gt.npz", allow_pickle=False)
        tr = cached_track(mp4, args.cache, complexity)
        fps = float(gt["fps"])
        idx = tr["frame_index"].astype(int)
        E = gt["camera_extrinsics"][idx]
        G = np.einsum("tab,tjb->tja", E[:, :3, :3], gt["joints_world"][idx].astype(np.float64)) + E[:, None, :3, 3]
        occ = gt["occluded"][idx].astype(bool) & gt["in_view"][idx].astype(bool)
        hidden = (gt["occluded"][idx] | gt["self_occluded"][idx]).astype(bool) & gt["in_view"][idx].astype(bool)
        entry = {"clip": mp4.stem, "group": str(gt["group"]), "frames": len(idx), "detected": float(tr["valid"].mean())}
        raw = np.where(tr["valid"][:, None, None], blazepose_to_vm24(tr["world"].astype(np.float64)), np.nan)
        raw_c = _fill(raw - np.array([0.0, 0.0, 0.95])) @ M_BC_TO_CV.T
        entry["blazepose_raw"] = score(raw_c, G, occ, hidden, fps)
        if not args.skip_v1:
            t = time.perf_counter()
            R, root, rest = v1_body(tr, fps)
            entry["v1_seconds"] = time.perf_counter() - t
            entry["v1_solve"] = score(joints_camera(R, root, rest), G, occ, hidden, fps)
        t = time.perf_counter()
        out = rope.predict(tr["image"], tr["world"], tr["visibility"], tr["valid"], tuple(tr["image_size"]),
                           fps=fps, smoothing=args.rope_smoothing)
        entry["rope_seconds"] = time.perf_counter() - t
        entry["rope"] = score(joints_camera(out.rotations, out.root, out.rest_offsets), G, occ, hidden, fps)
        entry["rope_height"], entry["gt_height"] = out.height, float(gt["body_height_m"])
        if args.refine:
            t = time.perf_counter()
            R2 = refine_2d(out.rotations, out.root, out.rest_offsets, tr["image"], tr["visibility"], tr["valid"],
                           tuple(tr["image_size"]), height=out.height)
            entry["refine_seconds"] = time.perf_counter() - t
            entry["rope_refined"] = score(joints_camera(R2, out.root, out.rest_offsets), G, occ, hidden, fps)
        per_clip.append(entry)
        print(f"{mp4.stem}: " + ", ".join(f"{m} PA {entry[m]['pa_mpjpe']:.0f}" for m in METHODS if m in entry),
              file=sys.stderr)
    methods = [m for m in METHODS if all(m in e for e in per_clip)]
    report = [f"## Body pose on {args.devset} ({len(per_clip)} clips; BlazePose {args.keypoints_quality.capitalize()} "
              f"input; camera frame, mm; jitter 10 m/s^3)"]
    for group in sorted({e["group"] for e in per_clip}):
        report.append(table(f"group: {group}", {m: [e[m] for e in per_clip if e["group"] == group] for m in methods}))
    report.append(table("all clips", {m: [e[m] for e in per_clip] for m in methods}))
    if args.speed:
        fps_rope = speed(rope)
        report.append(f"\nRope batched, 1 torch thread: {fps_rope:.0f} frames/s")
    speed_kp = None
    if args.keypoint_speed:
        speed_kp = keypoint_speed(clips)
        report.append(f"\nBlazePose per frame ({speed_kp['frames']:.0f} frames, best of {speed_kp['rounds']:.0f} "
                      f"alternating rounds): Full {speed_kp['full_ms']:.1f} ms, Heavy {speed_kp['heavy_ms']:.1f} ms, "
                      f"Heavy/Full {speed_kp['ratio']:.2f}x")
    print("\n".join(report))
    if args.json:
        args.json.write_text(json.dumps({"keypoints_quality": args.keypoints_quality, "clips": per_clip,
                                         "keypoint_speed": speed_kp}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
