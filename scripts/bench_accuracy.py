"""Accuracy benchmark on the synthetic dev set (renders of the anny body with known motion and camera).

    .venv/bin/python -m scripts.bench_accuracy [--devset .cache/devset] [--json out.json]
        [--variant NAME="ENGINE ARGS" ...] [--engine-arg=ARG ...]

Make the dev set first (reproducible from a seed): ``.venv/bin/python -m scripts.make_devset --out
.cache/devset --seed 0``. For every clip ``NAME.mp4`` + ``NAME_gt.npz`` the engine runs as a subprocess
(as the add-on runs it) and two methods are scored against the ground truth in the same run:

- ``blazepose_raw``: the raw BlazePose world landmarks mapped to the vm24 joints, hip-centred at a
  fixed standing height, camera axes taken as the world (what a naive add-on does: no trajectory);
- ``engine``: the current engine's ``joints_world`` (or, with ``--variant NAME="ARGS"``, one method per
  engine setting, e.g. ``--variant v1="--body solve" --variant rope="--body rope" --variant
  rope_refined="--body rope --option body.refine=true"``).

Tables: one per group (static, moving, occluded) and one for occluded joints alone (PA-MPJPE over the
joints the ground truth flags as hidden by an occluder). Metric definitions: scripts/vmkit/metrics.py.
Per-clip scoring is ``score_clip``; tests/test_accuracy.py runs it on the bundled sample.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from addon.core.engine import parse_message
from engine import skeleton as sk
from engine.pose import LM
from engine.result import read_result
from scripts.vmkit import metrics

ROOT = Path(__file__).resolve().parents[1]

METRICS = ("mpjpe", "pa_mpjpe", "w_mpjpe100", "wa_mpjpe100", "rte", "jitter", "accel_error", "foot_sliding")
COLUMNS = METRICS + ("jitter_gt",)
UNITS = {"mpjpe": "mm", "pa_mpjpe": "mm", "w_mpjpe100": "mm", "wa_mpjpe100": "mm", "rte": "%",
         "jitter": "10m/s3", "accel_error": "mm/f2", "foot_sliding": "mm/f", "jitter_gt": "10m/s3"}


def blazepose_to_vm24(world: np.ndarray) -> np.ndarray:
    """Raw BlazePose world landmarks (T, 33, 3; camera axes) -> vm24 joints, Z up, hips at 0.95 m."""
    Y = np.stack([world[..., 0], world[..., 2], -world[..., 1]], -1)  # x right, y away, z up
    g = lambda n: Y[:, LM[n]]  # noqa: E731
    mid = lambda a, b: 0.5 * (g(a) + g(b))  # noqa: E731
    pelvis = mid("left_hip", "right_hip")
    neck = mid("left_shoulder", "right_shoulder")
    J = {n: None for n in sk.JOINT_NAMES}
    J["pelvis"] = pelvis
    for s in ("left", "right"):
        J[f"{s}_hip"], J[f"{s}_knee"], J[f"{s}_ankle"] = g(f"{s}_hip"), g(f"{s}_knee"), g(f"{s}_ankle")
        J[f"{s}_foot"] = g(f"{s}_foot_index")
        J[f"{s}_shoulder"], J[f"{s}_elbow"], J[f"{s}_wrist"] = g(f"{s}_shoulder"), g(f"{s}_elbow"), g(f"{s}_wrist")
        J[f"{s}_hand"] = mid(f"{s}_index", f"{s}_pinky")
        J[f"{s}_collar"] = 0.5 * (neck + g(f"{s}_shoulder"))
    for k, n in enumerate(("spine1", "spine2", "spine3")):
        J[n] = pelvis + (k + 1) / 4.0 * (neck - pelvis)
    J["neck"] = neck
    J["head"] = mid("left_ear", "right_ear")
    P = np.stack([J[n] for n in sk.JOINT_NAMES], 1)
    return P + np.array([0.0, 0.0, 0.95])


def _fill(P: np.ndarray) -> np.ndarray:
    """Frames without a detection hold the previous valid pose (first valid at the start)."""
    P = P.copy()
    ok = np.all(np.isfinite(P.reshape(len(P), -1)), 1)
    if not ok.any():
        return np.zeros_like(P)
    last = P[np.argmax(ok)]
    for t in range(len(P)):
        if ok[t]:
            last = P[t]
        else:
            P[t] = last
    return P


def run_engine(video: Path, out: Path, extra: list[str] | tuple[str, ...] = ()) -> tuple[bool, str, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "engine", "run", str(video), "--out", str(out), *extra], cwd=ROOT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    msgs = [m for m in map(parse_message, p.stdout.splitlines()) if m is not None]
    err = next((m["message"] for m in msgs if m["type"] == "error"), "")
    return p.returncode == 0, err, time.perf_counter() - t0


def to_camera(P: np.ndarray, E: np.ndarray) -> np.ndarray:
    """World joints (T, J, 3) -> camera frame with world-to-camera extrinsics (T, 4, 4)."""
    return np.einsum("tab,tjb->tja", E[:, :3, :3], P) + E[:, None, :3, 3]


def score(pred: np.ndarray, gt: np.ndarray, fps: float, occluded: np.ndarray | None,
          pred_cam: np.ndarray, gt_cam: np.ndarray) -> dict[str, float]:
    """World metrics on world joints; MPJPE and PA-MPJPE in the camera frame (as the field reports them:
    world axes are a convention, the camera frame is not)."""
    m = metrics.evaluate(pred, gt, fps=fps)
    out = {k: float(m[k]) for k in METRICS}
    out["mpjpe"] = metrics.mpjpe(pred_cam, gt_cam, 0)
    out["pa_mpjpe"] = metrics.pa_mpjpe(pred_cam, gt_cam)
    out["jitter_gt"] = float(m["jitter_gt"])
    if occluded is not None and occluded.any():
        pa = np.stack([np.linalg.norm(metrics.apply_similarity(*metrics.similarity_transform(pred[t], gt[t]), pred[t])
                                      - gt[t], axis=-1) for t in range(len(gt))]) * 1000.0
        out["pa_mpjpe_occluded"] = float(pa[occluded].mean())
        out["pa_mpjpe_visible"] = float(pa[~occluded].mean())
        out["n_occluded"] = int(occluded.sum())
    return out


def load_gt(path: str | Path) -> dict[str, np.ndarray]:
    """A ground-truth file (docs/synthetic_data.md) as a dict of arrays; checks the joint names."""
    with np.load(path, allow_pickle=False) as z:
        gt = {k: z[k] for k in z.files}
    names = [str(n) for n in gt["joint_names"]]
    assert names == list(sk.JOINT_NAMES), "ground truth joint names differ from vm24"
    return gt


def score_clip(r: dict[str, np.ndarray], gt: dict[str, np.ndarray]) -> dict:
    """Score one engine result (``read_result``) against its ground truth (``load_gt``).

    Returns ``{"engine": {metric: value}, "blazepose_raw": {...}, "detected": fraction}``: the per-clip
    numbers of the tables and of ``--json`` (tests/test_accuracy.py calls this on the bundled sample)."""
    G = gt["joints_world"].astype(np.float64)
    fps = float(gt["fps"])
    occ = gt["occluded"].astype(bool) if "occluded" in gt else None
    idx = r["frame_index"].astype(int)
    keep = idx < len(G)
    Gi, oi = G[idx[keep]], (occ[idx[keep]] if occ is not None else None)
    pred = r["joints_world"].astype(np.float64)[keep]
    raw = np.where(r["valid"][keep, None, None], blazepose_to_vm24(r["landmarks_world"].astype(np.float64)[keep]), np.nan)
    Gc = to_camera(Gi, gt["camera_extrinsics"].astype(np.float64)[idx[keep]])
    pred_c = to_camera(pred, r["camera_extrinsics"].astype(np.float64)[keep])
    raw_c = _fill(raw - np.array([0.0, 0.0, 0.95]))[..., [0, 2, 1]] * np.array([1.0, -1.0, 1.0])
    return {"engine": score(pred, Gi, fps, oi, pred_c, Gc),
            "blazepose_raw": score(_fill(raw), Gi, fps, oi, raw_c, Gc),
            "detected": float(r["valid"].mean())}


def evaluate_clip(clip: Path, gt_path: Path, out: Path, engine_args: list[str] | tuple[str, ...] = ()) -> dict:
    """Run the engine on ``clip`` (result written to ``out``; ``engine_args`` added) and score it."""
    gt = load_gt(gt_path)
    ok, err, secs = run_engine(clip, out, engine_args)
    entry = {"clip": clip.name, "group": str(gt["group"]), "frames": len(gt["joints_world"]),
             "engine_seconds": round(secs, 2)}
    if not ok:
        entry["error"] = err
        return entry
    entry.update(score_clip(read_result(out), gt))
    return entry


def table(title: str, rows: dict[str, list[dict]], keys=COLUMNS) -> str:
    lines = [f"\n## {title}", "| method | clips | " + " | ".join(f"{k} ({UNITS.get(k, 'mm')})" for k in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for method, rs in rows.items():
        if not rs:
            continue
        vals = [np.mean([r[k] for r in rs if k in r]) if any(k in r for r in rs) else float("nan") for k in keys]
        lines.append(f"| {method} | {len(rs)} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devset", default=str(ROOT / ".cache" / "devset"))
    ap.add_argument("--engine-arg", action="append", default=[],
                    help="an option for every engine run, e.g. --engine-arg=--refine=footlock (repeatable)")
    ap.add_argument("--variant", action="append", default=[], metavar='NAME="ARGS"',
                    help='an engine setting scored as its own method, e.g. --variant rope="--body rope" '
                         '(repeatable; default: one method "engine" with no extra arguments)')
    ap.add_argument("--json", default=None, help="write all per-clip numbers here")
    ap.add_argument("--limit", type=int, default=None, help="only the first N clips")
    args = ap.parse_args(argv)
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else {"engine": ""}
    devset = Path(args.devset)
    clips = sorted(p for p in devset.glob("*.mp4") if (devset / f"{p.stem}_gt.npz").exists())
    if args.limit:
        clips = clips[: args.limit]
    if not clips:
        print(f"No clips in {devset}: make them with python -m scripts.make_devset --out {devset}", file=sys.stderr)
        return 2
    t_all = time.perf_counter()
    per_clip: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            entry: dict = {}
            for name, vargs in variants.items():
                out = Path(tmp) / f"{clip.stem}_{len(entry)}.npz"
                e = evaluate_clip(clip, devset / f"{clip.stem}_gt.npz", out, [*args.engine_arg, *shlex.split(vargs)])
                if not entry:
                    entry = {k: v for k, v in e.items() if k not in ("engine", "engine_seconds", "error")}
                    entry["engine_seconds"] = {}
                entry["engine_seconds"][name] = e["engine_seconds"]
                if "error" in e:
                    entry.setdefault("errors", {})[name] = e["error"]
                    print(f"{clip.name} [{name}]: engine failed: {e['error']}", file=sys.stderr)
                    continue
                entry[name] = e["engine"]
                print(f"{clip.name} [{entry['group']}] {name} {e['engine_seconds']:.1f}s  PA-MPJPE "
                      f"{e['engine']['pa_mpjpe']:.0f} mm, WA-MPJPE100 {e['engine']['wa_mpjpe100']:.0f} mm; raw "
                      f"PA-MPJPE {e['blazepose_raw']['pa_mpjpe']:.0f} mm", file=sys.stderr)
                entry.setdefault("blazepose_raw", e["blazepose_raw"])
            per_clip.append(entry)
    total = time.perf_counter() - t_all
    report = [f"# Accuracy on {devset} ({len(clips)} clips, {total:.0f} s in all; methods: "
              + ", ".join(f"{n} = engine {v or '(defaults)'}" for n, v in variants.items()) + ")"]
    methods = ("blazepose_raw", *variants)
    for group in sorted({e["group"] for e in per_clip}):
        rows = {m: [e[m] for e in per_clip if e["group"] == group and m in e] for m in methods}
        report.append(table(f"group: {group}", rows))
    rows = {m: [e[m] for e in per_clip if m in e] for m in methods}
    report.append(table("all clips", rows))
    occ_rows = {m: [e[m] for e in per_clip if m in e and "pa_mpjpe_occluded" in e[m]] for m in methods}
    report.append(table("occluded joints alone (frames x joints flagged occluded)", occ_rows,
                        keys=("pa_mpjpe_occluded", "pa_mpjpe_visible")))
    failed = [(e["clip"], n, err) for e in per_clip for n, err in e.get("errors", {}).items()]
    if failed:
        report.append(f"\nEngine failed {len(failed)} time(s): " + ", ".join(f"{c} [{n}] ({err})" for c, n, err in failed))
    print("\n".join(report))
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": per_clip, "seconds": total, "variants": variants}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
