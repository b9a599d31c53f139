"""Render the bundled sample clip: the anny body walking, static camera, with ground truth.

    .venv/bin/python -m scripts.make_sample_video [--out-dir engine/data] [--procedural]

Writes ``sample_walk.mp4`` (640x360, 30 fps, H.264 yuv420p, ~3.5 s) and ``sample_walk_gt.npz``
(format: docs/synthetic_data.md). The motion is CMU subject 07 walk (07_06) retargeted by
``scripts.vmkit.mocap`` when that module provides ``anny_pose``; ``--procedural`` (or its absence) uses the
built-in sinusoidal walk. Then BlazePose (complexity 1, tracking mode) is run on the result and the
detection rate printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


from scripts.vmkit.synth import ROOT

log = logging.getLogger("make_sample_video")

MOCAP_CLIP = "cmu-mb/07/07_06.bvh"   # walk; 104 frames at 30 fps once the added T-pose is dropped
N_FRAMES = 105          # 3.5 s at 30 fps (the clip may be a frame shorter)
HEADING_DEG = -55.0     # walk direction (0 = toward -Y): diagonally across the view
FPS = 30.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "engine" / "data")
    ap.add_argument("--procedural", action="store_true", help="use the built-in walk, not the mocap clip")
    ap.add_argument("--mocap-root", type=Path, default=ROOT.parent / "shared" / "data" / "mocap")
    ap.add_argument("--png-dir", type=Path, default=None, help="also keep the frames as PNGs here")
    ap.add_argument("--crf", type=int, default=26)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    from scripts.vmkit.synth import body as bd
    from scripts.vmkit.synth.detect import detection_rate
    from scripts.vmkit.synth.render import render_clip
    from scripts.vmkit.synth.spec import CameraSpec, SceneSpec

    phenotype = {"gender": 0.35, "age": 0.5, "muscle": 0.55, "weight": 0.45, "height": 0.55, "proportions": 0.5}
    if not args.procedural and bd.mocap_available():
        body = bd.from_mocap(args.mocap_root / MOCAP_CLIP, phenotype=phenotype, n_frames=N_FRAMES, fps=FPS)
        body = bd.turned(body, HEADING_DEG - bd.walking_heading_deg(body))
    else:
        log.info("using the procedural walk")
        body = bd.procedural_walk(N_FRAMES, FPS, phenotype=phenotype, speed=1.15, heading_deg=HEADING_DEG,
                                  start_xy=(1.5, 0.9))
    spec = SceneSpec(
        width=640, height=360, fps=FPS, seed=0, group="static",
        skin_rgb=(0.80, 0.60, 0.48), top_rgb=(0.72, 0.18, 0.14), bottom_rgb=(0.15, 0.20, 0.35),
        floor_kind="checker", floor_rgb_a=(0.78, 0.76, 0.70), floor_rgb_b=(0.45, 0.43, 0.40), floor_tile_m=0.5,
        background="walls", wall_rgb=(0.75, 0.78, 0.80), wall_distance_m=10.0, world_rgb=(0.7, 0.75, 0.8),
        studio_light="Default", shadows=True, shadow_intensity=0.4,
        camera=CameraSpec(kind="static", focal_mm=28.0, distance_m=4.6, height_m=1.4, azimuth_deg=30.0,
                          target_height_m=0.85),
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    mp4 = args.out_dir / "sample_walk.mp4"
    npz = args.out_dir / "sample_walk_gt.npz"
    t0 = time.perf_counter()
    stats = render_clip(spec, body, mp4, npz, seed=0, crf=args.crf, png_dir=args.png_dir)
    log.info("rendered %d frames in %.1f s (%.2f s/frame render), %s: %.0f kB", stats["frames"],
             time.perf_counter() - t0, stats["render_per_frame_s"], mp4, mp4.stat().st_size / 1e3)
    rate = detection_rate(mp4)
    log.info("BlazePose (complexity 1, tracking) detected the person in %.1f%% of frames", 100 * rate)
    return 0 if rate > 0.9 else 1


if __name__ == "__main__":
    from scripts.vmkit.bpy_exit import exit_process

    exit_process(main())
