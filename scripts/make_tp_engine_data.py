"""TP training pairs from the ENGINE's own body estimate on rendered clips (docs/tp.md).

    .venv/bin/python -m scripts.make_tp_engine_data --clips .cache/detector_big/blazepose_renders_clips
        [--out .cache/detector_big/tp_engine_pairs.npz] [--body solve]

TP was trained on mocap joints plus synthetic noise; in the engine its condition comes from BlazePose
and the body stage, whose errors are larger and structured (a side view's depth, a hidden leg), and
there its contacts and speeds fall apart. This script runs the engine as it runs (``engine.pipeline``:
decode, BlazePose, camera tracking, the body stage, the perspective trajectory) on each rendered clip
of ``scripts.make_detector_data`` (TRAINING performers only) and keeps, per clip, the TP condition the
engine builds (``engine.tp.representation.condition`` of the body's world joints, recorded where the
TP stage calls it) with the TRUE target: the rendered body's root velocity in the engine's heading
frame, its height and its foot contacts. The true path is turned into the engine's world by the yaw
that best aligns the true pelvis-relative joints with the engine's (2D Procrustes over the detected
frames), so the heading frames agree.

Output (loads with ``allow_pickle=False``): ``cond`` (N, 72), ``x`` (N, 7) concatenated over clips,
``clip_start``, ``clip_length``, ``clip_subject``, ``clip_group``, ``valid`` (N,) and ``yaw_align_deg``.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("make_tp_engine_data")
FORMAT = "video_mocap.tp_engine_pairs"


def align_yaw(gt_rel: np.ndarray, est_rel: np.ndarray) -> float:
    """Angle (rad) of the rotation about z that best maps ``gt_rel`` onto ``est_rel`` (..., 3) in xy."""
    a = gt_rel[..., :2].reshape(-1, 2)
    b = est_rel[..., :2].reshape(-1, 2)
    M = b.T @ a                                     # sum b a^T
    return float(np.arctan2(M[1, 0] - M[0, 1], M[0, 0] + M[1, 1]))


def capture(clip: Path, body: str):
    """Run the engine on ``clip``; return (condition (T, 72), the body's world joints at 30 fps, heading
    yaw, valid mask) as the TP stage saw them."""
    from engine import pipeline, segments, video
    from engine.cli import build_parser, run_options
    from engine.protocol import Protocol
    from engine.tp import representation as rp

    seen: dict = {}
    original = rp.condition

    def recording(joints, yaw):
        seen["joints"], seen["yaw"] = np.array(joints), np.array(yaw)
        return original(joints, yaw)

    proto = Protocol(io.StringIO(), max_rate=0)
    opts = run_options(build_parser().parse_args(["run", str(clip), "--out", "/nonexistent/x.npz", "--body", body]))
    info = video.probe(str(clip))
    extras: dict = {}
    track, moving, tracker, _ = pipeline.detect(opts, info, proto, lambda c, m: None, "cpu", extras)
    track, shots = segments.prepare(track, extras, pipeline.output_fps(None, info.fps, track.times),
                                    lambda c, m: None)
    rp.condition = recording
    try:
        pipeline.reconstruct(track, info, opts, proto, lambda c, m: None, device="cpu", camera_moving=moving,
                             camera_tracker=tracker, shot=shots["shot"], timings={})
    finally:
        rp.condition = original
    if "joints" not in seen:
        raise RuntimeError(f"{clip.name}: the TP stage did not run")
    return original(seen["joints"], seen["yaw"]), seen["joints"], seen["yaw"], np.asarray(track.valid, bool)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=Path, required=True, help="make_detector_data's <out>_clips folder")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--body", default="solve", help="the engine's body stage to take the condition from")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import torch

    from engine.tp import representation as rp

    torch.set_num_threads(1)
    out = args.out or args.clips.parent / "tp_engine_pairs.npz"
    records = sorted(args.clips.glob("*_record.npz"))[:args.limit]
    conds, xs, valids, starts, lengths, subjects, groups, yaws = [], [], [], [], [], [], [], []
    n = 0
    t_all = time.perf_counter()
    for rec_path in records:
        name = rec_path.name[:-len("_record.npz")]
        mp4, gt_path = rec_path.with_name(name + ".mp4"), rec_path.with_name(name + "_gt.npz")
        with np.load(rec_path, allow_pickle=False) as r:
            subject, group = str(r["clip_subject"]), str(r["clip_group"])
        with np.load(gt_path, allow_pickle=False) as g:
            G, contacts, fps = g["joints_world"].astype(np.float64), g["foot_contacts"].astype(bool), float(g["fps"])
        if abs(fps - rp.FPS) > 1e-6:
            log.warning("%s: %.1f fps, TP works at %.0f; skipped", name, fps, rp.FPS)
            continue
        try:
            cond, J, yaw, valid = capture(mp4, args.body)
        except Exception as e:  # noqa: BLE001 - a clip the engine cannot do is left out, and said
            log.warning("%s: %s: %s; skipped", name, type(e).__name__, e)
            continue
        if len(cond) != len(G) or valid.sum() < 10:
            log.warning("%s: %d condition frames for %d rendered, %d detected; skipped", name, len(cond), len(G),
                        valid.sum())
            continue
        th = align_yaw((G - G[:, :1])[valid], (J - J[:, :1])[valid])
        c, s = np.cos(th), np.sin(th)
        Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        root = G[:, 0] @ Rz.T
        x = rp.target(root, yaw, contacts, rp.FPS)
        conds.append(cond.astype(np.float32))
        xs.append(x.astype(np.float32))
        valids.append(valid)
        starts.append(n)
        lengths.append(len(cond))
        subjects.append(subject)
        groups.append(group)
        yaws.append(np.degrees(th))
        n += len(cond)
        rel_err = np.linalg.norm(((G - G[:, :1]) @ Rz.T - (J - J[:, :1]))[valid], axis=-1).mean() * 1000
        log.info("%s (%s, %s): %d frames, yaw %.0f deg, pelvis-relative joints after the yaw %.0f mm, "
                 "true speed %.2f m/s, contacts %.2f", name, subject, group, len(cond), np.degrees(th), rel_err,
                 np.linalg.norm(x[:, rp.VEL], axis=1).mean(), (x[:, rp.CONTACT] > 0).mean())
    if not conds:
        log.error("no clips")
        return 1
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, format=np.array(FORMAT), cond=np.concatenate(conds), x=np.concatenate(xs),
                        valid=np.concatenate(valids), clip_start=np.array(starts, np.int64),
                        clip_length=np.array(lengths, np.int64), clip_subject=np.array(subjects),
                        clip_group=np.array(groups), yaw_align_deg=np.array(yaws), body=np.array(args.body))
    tmp.replace(out)
    log.info("%d clips, %d frames in %.0f s -> %s", len(conds), n, time.perf_counter() - t_all, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
