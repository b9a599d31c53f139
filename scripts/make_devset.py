"""Render a small synthetic dev set (reproducible from a seed) with ground truth.

    .venv/bin/python -m scripts.make_devset --out .cache/devset --seed 0 [--n 12] [--frames 60]

Clips cycle through three groups: ``static`` camera, ``moving`` camera (pan / dolly / handheld) and
``occluded`` (static camera, boxes/pillars/counters on the line of sight, placed so that they hide 15-50 %
of the joint-frames and leave the torso free in at least 60 % of the frames, see ``scripts.vmkit.synth.spec``). Body shapes are random anny
phenotypes. Motions come from the VALIDATION performers of the mocap collection
(``scripts.vmkit.mocap.dataset.VAL_SUBJECTS``) when ``scripts.vmkit.mocap.anny_pose`` is available, else from the
built-in procedural walk (with random speed, heading and cadence). Writes per clip ``NN_group.mp4``,
``NN_group_gt.npz`` (docs/synthetic_data.md), a preview PNG, and ``index.json`` for the whole set.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path


from scripts.vmkit.synth import ROOT

log = logging.getLogger("make_devset")
GROUPS = ("static", "moving", "occluded")


def mocap_clips(split: str = "val"):
    """Clips of one split (``"val"`` or ``"train"``, by performer: ``scripts.vmkit.mocap.dataset.VAL_SUBJECTS``)
    of the mocap collection; None when scripts.vmkit.mocap cannot pose anny yet."""
    assert split in ("train", "val"), f"split must be train|val, got {split!r}"
    from scripts.vmkit.synth.body import mocap_available
    if not mocap_available():
        return None
    from scripts.vmkit.mocap import dataset
    return [e for e in dataset.list_clips(dataset.DEFAULT_ROOT) if e.split == split]


def sample_clip(seed: int, i: int, entries, *, frames: int, fps: float, width: int, height: int):
    """Clip ``i`` of a set drawn from ``seed``: ``(group, body, spec, entry)``.

    The group cycles through ``GROUPS``; the motion is a random window of a random clip of ``entries``
    (``mocap_clips``), or the procedural walk when ``entries`` is None (``entry`` is then None). The
    same arguments give the same clip.
    """
    import numpy as np

    from scripts.vmkit.synth import body as bd
    from scripts.vmkit.synth.spec import sample_spec

    rng = np.random.default_rng([seed, i])
    group = GROUPS[i % len(GROUPS)]
    phen = bd.sample_phenotype(rng)
    body = entry = None
    while entries is not None and body is None:
        from scripts.vmkit.mocap import dataset
        entry = entries[int(rng.integers(len(entries)))]
        motion = dataset.load_motion(entry, fps=fps)
        if motion.num_frames < frames:
            continue
        start = int(rng.integers(0, motion.num_frames - frames + 1))
        body = bd.from_motion(motion, phenotype=phen, start=start, n_frames=frames,
                              yaw_deg=float(rng.uniform(-180, 180)))
    if body is None:
        entry = None
        body = bd.procedural_walk(frames, fps, phenotype=phen, speed=float(rng.uniform(0.7, 1.6)),
                                  heading_deg=float(rng.uniform(-180, 180)),
                                  cadence_hz=float(rng.uniform(0.8, 1.05)), phase=float(rng.uniform(0, 6.28)))
    centre = body.joints_world[:, 0, :2].mean(0)             # the clip's mean pelvis at the origin
    body.joints_world[..., :2] -= centre
    body.vertices[..., :2] -= centre.astype(np.float32)
    spec = sample_spec(rng, group, body.joints_world, width=width, height=height, fps=fps,
                       seed=seed * 1000 + i)
    return group, body, spec, entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "devset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--procedural", action="store_true", help="use the built-in walk even if mocap is available")
    ap.add_argument("--dry-run", action="store_true",
                    help="sample motions and scenes only; print the predicted occlusion / framing per clip")
    ap.add_argument("--no-detect", action="store_true", help="skip the BlazePose detection-rate check")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    import numpy as np

    from scripts.vmkit.synth.render import render_clip
    from scripts.vmkit.synth.spec import occlusion_stats

    entries = None if args.procedural else mocap_clips("val")
    if entries is not None:
        from scripts.vmkit.mocap import dataset
        log.info("motions: %d validation clips (%s)", len(entries), ", ".join(sorted(dataset.VAL_SUBJECTS)))
    else:
        log.info("motions: procedural walk (scripts.vmkit.mocap.anny_pose not available or --procedural)")
    args.out.mkdir(parents=True, exist_ok=True)
    index = {"seed": args.seed, "n": args.n, "frames": args.frames, "size": [args.width, args.height],
             "fps": args.fps, "clips": []}
    t_all = time.perf_counter()
    for i in range(args.n):
        group, body, spec, _ = sample_clip(args.seed, i, entries, frames=args.frames, fps=args.fps,
                                           width=args.width, height=args.height)
        name = f"{i:02d}_{group}"
        if args.dry_run:
            from scripts.vmkit.synth.spec import camera_track, in_view_flags, occluder_flags
            eye = camera_track(spec.camera, body.joints_world[:, 0], args.fps, spec.seed)[0, :3, 3]
            occ = occlusion_stats(occluder_flags(eye, body.joints_world, spec.occluders))
            log.info("%s: %s camera, %s, %d occluders, occluded %.3f, torso free %.3f, frames with occlusion "
                     "%.3f, whole body in view %.3f", name, spec.camera.kind, body.source, len(spec.occluders),
                     occ["occluded_fraction"], occ["torso_visible_fraction"], occ["frames_with_occlusion"],
                     in_view_flags(spec, body.joints_world).all(1).mean())
            continue
        stats = render_clip(spec, body, args.out / f"{name}.mp4", args.out / f"{name}_gt.npz",
                            seed=spec.seed, png_dir=args.out / "preview" / name, png_frames={0, args.frames // 2})
        rec = {"name": name, "group": group, "camera": spec.camera.kind, "motion": body.source,
               "occluders": len(spec.occluders), "phenotype": body.phenotype, **{k: round(v, 3) for k, v in stats.items()}}
        if not args.no_detect:
            from scripts.vmkit.synth.detect import detection_rate
            rec["blazepose_detection_rate"] = round(detection_rate(args.out / f"{name}.mp4"), 3)
        gt = np.load(args.out / f"{name}_gt.npz", allow_pickle=False)
        rec["occluded_joint_fraction"] = round(float(gt["occluded"].mean()), 3)
        rec["in_view_fraction"] = round(float(gt["in_view"].mean()), 3)
        rec["whole_body_in_view_frames"] = round(float(gt["in_view"].all(1).mean()), 3)
        if group == "occluded":
            stats_occ = occlusion_stats(gt["occluded"])
            rec["torso_visible_fraction"] = round(stats_occ["torso_visible_fraction"], 3)
            rec["frames_with_occlusion"] = round(stats_occ["frames_with_occlusion"], 3)
        index["clips"].append(rec)
        log.info("%s: %s camera, %s, %.1f s (%.2f s/frame)%s", name, spec.camera.kind, body.source, stats["total_s"],
                 stats["render_per_frame_s"],
                 f", BlazePose {100 * rec['blazepose_detection_rate']:.0f}%" if "blazepose_detection_rate" in rec else "")
        (args.out / "index.json").write_text(json.dumps(index, indent=1))
    index["total_s"] = round(time.perf_counter() - t_all, 1)
    (args.out / "index.json").write_text(json.dumps(index, indent=1))
    log.info("dev set: %d clips in %.1f s -> %s", args.n, index["total_s"], args.out)
    return 0


if __name__ == "__main__":
    from scripts.vmkit.bpy_exit import exit_process

    exit_process(main())
