"""Batch conversion: ``blender -b -c video_mocap convert VIDEO... --out DIR [--format ...]``.

Also used by scripts/convert.py (``blender -b -P scripts/convert.py -- ...``). Each video is run
through the engine, applied to a fresh armature in an emptied scene and written with Blender's own
exporters. Prints one summary line per video; returns non-zero if any video failed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

import bpy

from ..core import engine as core_engine
from . import ops_result
from .export import FORMATS, export_atomic
from .session import DEFAULT_STALL_TIMEOUT_S, ImportRequest, ImportSession

_handle: list[Any] = []


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blender -b -c video_mocap convert",
                                description="Convert videos of a person to animated armatures.")
    p.add_argument("videos", nargs="*", metavar="VIDEO")
    p.add_argument("--result", action="append", default=[], metavar="RESULT.npz",
                   help="also convert a saved result file without running the engine (repeatable)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--format", choices=FORMATS, default="blend")
    p.add_argument("--engine-python", default="", help="engine interpreter (default: preferences, "
                   f"${core_engine.ENV_PYTHON}, or the add-on's engine venv)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--camera", choices=("auto", "static", "moving"), default="auto")
    p.add_argument("--keypoints-quality", choices=core_engine.KEYPOINT_QUALITIES, default="full",
                   help="BlazePose model: full (default) or heavy (installed once: engine/setup_env.py --heavy-only)")
    p.add_argument("--focal", type=float, default=0.0, help="focal length in pixels (0 = unknown)")
    p.add_argument("--frame-start", type=int, default=0)
    p.add_argument("--frame-end", type=int, default=-1)
    p.add_argument("--shot", type=int, default=0, metavar="N",
                   help="import only shot N (1 = the first) of a video with cuts (0 = all shots)")
    p.add_argument("--keep-result", action="store_true",
                   help="also write the engine's result file (VIDEO.npz) into the output folder")
    p.add_argument("--stall-timeout", type=float, default=DEFAULT_STALL_TIMEOUT_S, metavar="SECONDS",
                   help="stop a video's engine run after this long without progress (0 = never; "
                        f"default {DEFAULT_STALL_TIMEOUT_S:g})")
    return p


def output_stems(videos: list[str]) -> list[str]:
    """One output name per video, unique: same-named inputs from different folders (a/walk.mp4,
    b/walk.mp4) become walk, walk_2, ... (never a name that another input has, compared
    case-insensitively for case-insensitive file systems)."""
    taken = {Path(v).stem.casefold() for v in videos}
    used: set[str] = set()
    stems = []
    for v in videos:
        stem = Path(v).stem or "video"
        name, k = stem, 1
        while name.casefold() in used or (k > 1 and name.casefold() in taken):
            k += 1
            name = f"{stem}_{k}"
        used.add(name.casefold())
        stems.append(name)
    return stems


def _clear_scene() -> None:
    """Remove everything the previous video (or the startup file) left in the session."""
    ids: list[Any] = [*bpy.data.objects, *bpy.data.actions, *bpy.data.armatures, *bpy.data.meshes,
                      *bpy.data.cameras, *bpy.data.lights]
    bpy.data.batch_remove(ids)


def convert(argv: list[str]) -> int:
    """Entry point of the ``convert`` command; ``argv`` excludes the command name. Exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    out_dir = Path(os.path.abspath(args.out))
    if not (args.stall_timeout >= 0 and math.isfinite(args.stall_timeout)):
        print(f"video_mocap: --stall-timeout must be a number of seconds >= 0, got {args.stall_timeout}",
              file=sys.stderr)
        return 2
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"video_mocap: cannot create output folder {out_dir}: {e}", file=sys.stderr)
        return 2
    if not os.access(out_dir, os.W_OK):
        print(f"video_mocap: output folder is not writable: {out_dir}", file=sys.stderr)
        return 2
    opts = core_engine.RunOptions(frame_start=args.frame_start, frame_end=args.frame_end,
                                  camera=args.camera, focal_px=args.focal, device=args.device,
                                  keypoint_quality=args.keypoints_quality)
    if not args.videos and not args.result:
        print("video_mocap: give videos and/or --result files", file=sys.stderr)
        return 2
    engine_python = os.path.abspath(args.engine_python) if args.engine_python else ""
    failures = 0
    stems = output_stems(list(args.result) + list(args.videos))   # unique across results and videos
    for res, stem in zip(args.result, stems[:len(args.result)]):   # saved results: the operator's code, no engine
        _clear_scene()
        ok, msg, name = ops_result.import_result_file(bpy.context, os.path.abspath(res), shot=args.shot)
        target = out_dir / f"{stem}.{args.format}"
        if ok:
            try:
                export_atomic(bpy.data.objects[name], target, args.format)
                msg = f"{msg} -> {target}"
            except (OSError, RuntimeError, ValueError) as e:
                ok, msg = False, f"export failed: {e}"
        failures += not ok
        print(f"{'OK' if ok else 'FAILED'} {res}: {msg}", flush=True)
    for video, stem in zip(args.videos, stems[len(args.result):]):
        video = os.path.abspath(video)   # the engine runs in the extension's folder, not ours
        _clear_scene()
        keep = str(out_dir / f"{stem}.npz") if args.keep_result else ""
        session = ImportSession(ImportRequest(video=video, options=opts, set_scene=True,
                                              engine_python=engine_python, keep_result=keep,
                                              stall_timeout=args.stall_timeout or None, shot=args.shot))
        ok, msg = session.run_blocking(bpy.context)
        target = out_dir / f"{stem}.{args.format}"
        if ok:
            try:
                export_atomic(bpy.data.objects[session.obj_name], target, args.format)
                msg = f"{msg} -> {target}"
            except (OSError, RuntimeError, ValueError) as e:
                ok, msg = False, f"export failed: {e}"
        failures += not ok
        print(f"{'OK' if ok else 'FAILED'} {video}: {msg}", flush=True)
    return 1 if failures else 0


def cli_command(argv: list[str]) -> int:
    """``blender -c video_mocap <subcommand> ...``; the only subcommand is ``convert``."""
    if not argv or argv[0] != "convert":
        print("usage: blender -b -c video_mocap convert VIDEO... --out DIR [--format blend|bvh|fbx|glb]",
              file=sys.stderr)
        return 2
    return convert(argv[1:])


def register() -> None:
    if hasattr(bpy.utils, "register_cli_command"):
        _handle.append(bpy.utils.register_cli_command("video_mocap", cli_command))


def unregister() -> None:
    while _handle:
        bpy.utils.unregister_cli_command(_handle.pop())
