"""Trajectory benchmark: several trajectory/refine settings on the same landmarks, per dev-set group.

    .venv/bin/python -m scripts.bench_trajectory [--devset .cache/devset] [--json out.json]
        [--variant NAME="ENGINE ARGS" ...]

For each clip the video is decoded and BlazePose runs once (``engine.pipeline.detect``, as the engine
does); every variant then runs the stages after the keypoints (``engine.pipeline.reconstruct``) with its
own options and is scored with ``scripts.bench_accuracy.score_clip``. Also reported: the camera's
rotation error against the dev set's true cameras (degrees per 100 frames: the angle between the
estimated and the true rotation of the camera over each 100-frame span, averaged) and the time of the
stages after the keypoints (``after_pose_ratio``) and of the trajectory stage with its refinement
(``trajectory_ratio``) as ratios of the decode + BlazePose (+ camera tracking) time, one run, same machine.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from scripts.bench_accuracy import load_gt, score_clip, table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = {
    "perspective": "--trajectory perspective",
    "tp_no_evidence": "--trajectory tp --option trajectory.evidence=false",
    "tp": "--trajectory tp",
}


def rotation_drift(E_pred: np.ndarray, E_gt: np.ndarray, span: int = 100) -> float:
    """Mean angle (degrees) between the estimated and true camera rotation change over ``span`` frames."""
    from scipy.spatial.transform import Rotation

    Rp, Rg = E_pred[:, :3, :3], E_gt[:, :3, :3]
    T = len(Rp)
    span = min(span, T - 1)
    if span < 1:
        return 0.0
    errs = []
    for a in range(0, T - span, max(1, span // 4)):
        dp = Rp[a + span] @ Rp[a].T
        dg = Rg[a + span] @ Rg[a].T
        errs.append(np.degrees(Rotation.from_matrix(dp @ dg.T).magnitude()))
    return float(np.mean(errs)) * 100.0 / span


def main(argv=None) -> int:
    from engine import pipeline, segments, video
    from engine.cli import build_parser, run_options
    from engine.protocol import Protocol

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devset", default=str(ROOT / ".cache" / "devset"))
    ap.add_argument("--variant", action="append", default=[], metavar='NAME="ARGS"')
    ap.add_argument("--json", default=None)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    variants = dict(DEFAULT_VARIANTS)
    if args.variant:
        variants = dict(v.split("=", 1) for v in args.variant)
    clips = sorted(Path(args.devset).glob("*.mp4"))[:args.limit]
    proto = Protocol(io.StringIO(), max_rate=0)
    import torch

    torch.set_num_threads(1)
    per_clip = []
    for clip in clips:
        gt = load_gt(clip.with_name(clip.stem + "_gt.npz"))
        entry = {"clip": clip.name, "group": str(gt["group"]), "frames": len(gt["joints_world"]), "variants": {}}
        base = run_options(build_parser().parse_args(["run", str(clip), "--out", "/nonexistent/x.npz"]))
        info = video.probe(str(clip))
        warns: list = []
        t0 = time.perf_counter()
        extras: dict = {}
        track, moving, tracker, _ = pipeline.detect(base, info, proto, lambda c, m: warns.append(c), "cpu", extras)
        entry["pose_seconds"] = time.perf_counter() - t0
        track, shots = segments.prepare(track, extras, pipeline.output_fps(None, info.fps, track.times),
                                        lambda c, m: None)
        for name, vargs in variants.items():
            opts = run_options(build_parser().parse_args(["run", str(clip), "--out", "/nonexistent/x.npz",
                                                          *shlex.split(vargs)]))
            t1 = time.perf_counter()
            timings: dict = {}
            try:
                data, _ = pipeline.reconstruct(track, info, opts, proto, lambda c, m: None, device="cpu",
                                               camera_moving=moving, camera_tracker=tracker, shot=shots["shot"],
                                               timings=timings)
            except Exception as e:  # noqa: BLE001 - one failing variant must not stop the benchmark
                entry["variants"][name] = {"error": f"{type(e).__name__}: {e}"}
                continue
            s = score_clip(data, gt)["engine"]
            idx = data["frame_index"].astype(int)
            s["camera_rot_deg_per_100f"] = rotation_drift(data["camera_extrinsics"].astype(np.float64),
                                                          gt["camera_extrinsics"].astype(np.float64)[idx])
            s["after_pose_ratio"] = (time.perf_counter() - t1) / entry["pose_seconds"]
            s["trajectory_ratio"] = timings.get("trajectory", float("nan")) / entry["pose_seconds"]
            entry["variants"][name] = s
        per_clip.append(entry)
        print(f"{clip.name} ({entry['group']}): " + "; ".join(
            f"{n} W100 {v.get('w_mpjpe100', float('nan')):.0f} RTE {v.get('rte', float('nan')):.1f} "
            f"slide {v.get('foot_sliding', float('nan')):.0f}" for n, v in entry["variants"].items()), flush=True)
    keys = ("mpjpe", "pa_mpjpe", "w_mpjpe100", "wa_mpjpe100", "rte", "jitter", "foot_sliding",
            "camera_rot_deg_per_100f", "after_pose_ratio", "trajectory_ratio")
    for group in ["all"] + sorted({e["group"] for e in per_clip}):
        rows = {n: [e["variants"][n] for e in per_clip if (group == "all" or e["group"] == group)
                    and "error" not in e["variants"].get(n, {"error": 1})] for n in variants}
        print(table(f"{group} ({sum(1 for e in per_clip if group == 'all' or e['group'] == group)} clips)", rows, keys))
    if args.json:
        Path(args.json).write_text(json.dumps(per_clip, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
