"""BlazePose run on rendered clips of TRAINING performers, with ground truth (docs/training_data.md).

    .venv/bin/python -m scripts.make_detector_data [--out .cache/training/blazepose_renders.npz] [--n 24]
        [--start 0] [--pack-only] [--frames 48] [--width 480] [--height 270] [--seed 0]

Teaches the Rope network the real detector's bias: each clip is sampled like a dev-set clip
(``make_devset.sample_clip``: static / moving / occluded groups, random anny shape, random scene) but
from the TRAINING performers only (``scripts.vmkit.mocap.dataset.VAL_SUBJECTS`` are never used), rendered with
Blender Workbench (``scripts.vmkit.synth.render``), then decoded and detected exactly as the engine does
(``engine.video.VideoReader`` -> ``engine.pose.BlazePose`` -> ``engine.pose.LandmarkBuffer``).
All clips go, concatenated along the frame axis, into one npz (loads with ``allow_pickle=False``).
The rendered mp4 and GT npz of each clip are kept next to it in ``<out stem>_clips/``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np


from scripts.vmkit.synth import ROOT

log = logging.getLogger("make_detector_data")
FORMAT = "video_mocap.detector_renders"
FORMAT_VERSION = 1
# BlazePose landmarks that name the same anatomical point as a vm24 joint (hips excluded: BlazePose's
# hip points sit higher and wider than the skeleton's hip joint centres).
COMPARABLE = tuple(f"{s}_{p}" for p in ("shoulder", "elbow", "wrist", "knee", "ankle") for s in ("left", "right"))
PER_FRAME = ("landmarks_image", "landmarks_world", "visibility", "valid", "times", "frame_index",
             "joints_world", "joints_camera", "joints_2d", "camera_extrinsics", "occluded", "self_occluded",
             "in_view", "foot_contacts")
PER_CLIP = ("clip_name", "clip_subject", "clip_seed", "clip_group", "camera_kind", "camera_intrinsics",
            "image_size", "phenotype_values", "render_s", "pose_s")


def pack(clips: list[dict]) -> dict[str, np.ndarray]:
    """Concatenate per-clip dicts (keys ``PER_FRAME`` with a leading frame axis, scalars ``PER_CLIP``)
    into the npz arrays: frames along axis 0, ``clip_start`` / ``clip_length`` give the boundaries."""
    assert clips, "no clips to pack"
    lengths = np.array([len(c["valid"]) for c in clips], np.int64)
    for c, n in zip(clips, lengths):
        bad = [k for k in PER_FRAME if len(c[k]) != n]
        assert not bad, f"clip {c['clip_name']}: {bad} do not have {n} frames"
    out: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "format_version": np.int32(FORMAT_VERSION),
        "clip_start": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        "clip_length": lengths,
    }
    for k in PER_FRAME:
        out[k] = np.concatenate([np.asarray(c[k]) for c in clips])
    for k in PER_CLIP:
        out[k] = np.stack([np.asarray(c[k]) for c in clips])
    return out


def comparable_error_px(pack_: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean 2D distance (pixels) of BlazePose's landmark to the projected GT joint, per comparable
    point, over detected frames where the joint is in view; plus the overall mean and median."""
    from engine.pose import LM
    from engine.skeleton import INDEX

    size = np.repeat(pack_["image_size"], pack_["clip_length"], axis=0).astype(np.float64)   # (N, 2)
    lm = pack_["landmarks_image"][:, [LM[n] for n in COMPARABLE], :2] * size[:, None, :]
    gt = pack_["joints_2d"][:, [INDEX[n] for n in COMPARABLE]]
    ok = pack_["valid"][:, None] & pack_["in_view"][:, [INDEX[n] for n in COMPARABLE]]
    d = np.linalg.norm(lm - gt, axis=-1)
    res = {n: float(d[ok[:, j], j].mean()) if ok[:, j].any() else float("nan") for j, n in enumerate(COMPARABLE)}
    res["mean"] = float(d[ok].mean()) if ok.any() else float("nan")
    res["median"] = float(np.median(d[ok])) if ok.any() else float("nan")
    vis = ok & ~pack_["occluded"][:, [INDEX[n] for n in COMPARABLE]]
    res["mean_not_occluded"] = float(d[vis].mean()) if vis.any() else float("nan")
    return res


def detect(mp4: Path, model_complexity: int = 1) -> tuple:
    """The engine's decode + pose stage on one video: ``(LandmarkTrack, VideoReader)``; complexity 2 is
    BlazePose Heavy (``--keypoints-quality heavy``), installed by engine/setup_env.py --heavy-only."""
    from engine import video
    from engine.pose import BlazePose, LandmarkBuffer

    reader = video.VideoReader(str(mp4))
    buf = LandmarkBuffer()
    with BlazePose(model_complexity=model_complexity) as bp, reader:
        for fr in reader:
            buf.append(fr.time, fr.index, bp(fr.image))
    return buf.track(), reader


def clip_record(gt_path: Path, track, reader, *, name: str, subject: str, seed: int, render_s: float,
                pose_s: float) -> dict:
    gt = np.load(gt_path, allow_pickle=False)
    T = len(gt["joints_world"])
    assert len(track) == T, f"{name}: decoded {len(track)} frames, rendered {T}"
    assert np.array_equal(track.frame_index, np.arange(T)), f"{name}: frames were skipped while decoding"
    assert (reader.width, reader.height) == tuple(gt["image_size"]), f"{name}: the reader rescaled the frames"
    T_cw = gt["camera_extrinsics"]
    jw = gt["joints_world"].astype(np.float64)
    jc = np.einsum("tij,tnj->tni", T_cw[:, :3, :3], jw) + T_cw[:, None, :3, 3]
    return {
        "landmarks_image": track.image, "landmarks_world": track.world, "visibility": track.visibility,
        "valid": track.valid, "times": track.times, "frame_index": track.frame_index,
        "joints_world": gt["joints_world"], "joints_camera": jc.astype(np.float32), "joints_2d": gt["joints_2d"],
        "camera_extrinsics": T_cw, "occluded": gt["occluded"], "self_occluded": gt["self_occluded"],
        "in_view": gt["in_view"], "foot_contacts": gt["foot_contacts"],
        "clip_name": name, "clip_subject": subject, "clip_seed": np.int64(seed), "clip_group": str(gt["group"]),
        "camera_kind": str(gt["camera_kind"]), "camera_intrinsics": gt["camera_intrinsics"],
        "image_size": gt["image_size"], "phenotype_values": gt["phenotype_values"],
        "render_s": np.float64(render_s), "pose_s": np.float64(pose_s),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "training" / "blazepose_renders.npz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--start", type=int, default=0,
                    help="first clip index to make (run disjoint ranges in parallel, then pack with --pack-only)")
    ap.add_argument("--pack-only", action="store_true", help="only pack the clips already made in [0, n)")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=270)
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.width % 2 or args.height % 2:
        ap.error("--width and --height must be even (H.264 yuv420p)")

    from scripts.make_devset import mocap_clips, sample_clip

    from scripts.vmkit.mocap.dataset import VAL_SUBJECTS
    from engine.pose import LANDMARK_NAMES
    from engine.skeleton import JOINT_NAMES
    from scripts.vmkit.synth.body import PHENOTYPE_NAMES
    from scripts.vmkit.synth.render import render_clip

    entries = mocap_clips("train")
    if not entries:
        log.error("scripts.vmkit.mocap cannot pose anny, or the collection has no training clips")
        return 1
    assert not any(e.subject in VAL_SUBJECTS for e in entries)
    log.info("motions: %d training clips of %d performers", len(entries), len({e.subject for e in entries}))
    clip_dir = args.out.parent / f"{args.out.stem}_clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    # Seeds of this set live apart from the dev set's (make_devset uses [seed, i] and seed * 1000 + i).
    set_seed = 10_000 + args.seed
    clips: list[dict] = []
    t_all = time.perf_counter()
    for i in range(0 if args.pack_only else args.start, args.n):
        # Each clip's record is kept beside its video, so an interrupted run resumes where it stopped.
        done = sorted(clip_dir.glob(f"{i:03d}_*_record.npz"))
        if done:
            with np.load(done[0], allow_pickle=False) as z:
                clips.append({k: z[k] for k in z.files})
            continue
        if args.pack_only:
            continue
        t0 = time.perf_counter()
        group, body, spec, entry = sample_clip(set_seed, i, entries, frames=args.frames, fps=args.fps,
                                               width=args.width, height=args.height)
        assert entry is not None and entry.subject not in VAL_SUBJECTS
        name = f"{i:03d}_{group}"
        mp4, gt_path = clip_dir / f"{name}.mp4", clip_dir / f"{name}_gt.npz"
        render_clip(spec, body, mp4, gt_path, seed=spec.seed)
        render_s = time.perf_counter() - t0            # sampling + posing + rendering + GT
        t1 = time.perf_counter()
        track, reader = detect(mp4)
        pose_s = time.perf_counter() - t1
        record = clip_record(gt_path, track, reader, name=body.source, subject=entry.subject,
                             seed=spec.seed, render_s=render_s, pose_s=pose_s)
        tmp_record = clip_dir / f"{name}_record.tmp.npz"
        np.savez(tmp_record, **record)
        tmp_record.replace(clip_dir / f"{name}_record.npz")
        clips.append(record)
        log.info("%s: %s, %s camera, %s (%s): render %.1f s, BlazePose %.1f s, detected %.0f %%",
                 name, group, spec.camera.kind, body.source, entry.subject, render_s, pose_s,
                 100 * track.valid.mean())
    if args.start and not args.pack_only:
        log.info("clips %d..%d made; pack all with --pack-only", args.start, args.n - 1)
        return 0
    arrays = pack(clips)
    arrays.update(fps=np.float64(args.fps), landmark_names=np.array(LANDMARK_NAMES),
                  joint_names=np.array(JOINT_NAMES), phenotype_names=np.array(PHENOTYPE_NAMES),
                  set_seed=np.int64(args.seed))
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.out)
    err = comparable_error_px(arrays)
    log.info("%d clips, %d frames in %.1f s -> %s", len(clips), len(arrays["valid"]), time.perf_counter() - t_all,
             args.out)
    log.info("detection rate %.3f; BlazePose vs projected GT (px, detected frames, joint in view): mean %.1f, "
             "median %.1f, not occluded %.1f", arrays["valid"].mean(), err["mean"], err["median"],
             err["mean_not_occluded"])
    log.info("per point (px): %s", ", ".join(f"{n} {err[n]:.1f}" for n in COMPARABLE))
    return 0


if __name__ == "__main__":
    from scripts.vmkit.bpy_exit import exit_process

    exit_process(main())
