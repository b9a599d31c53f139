"""Batch conversion: ``blender -b -c video_mocap convert VIDEO... --out DIR [--format ...]``.

Also used by scripts/convert.py (``blender -b -P scripts/convert.py -- ...``). Each video is run
through the engine, applied to a fresh armature in an emptied scene and written with Blender's own
exporters. With ``--rig FILE.blend --target NAME`` each input is retargeted instead onto the armature
NAME of a freshly opened copy of that file (the file on disk is never written; ``--format blend``
saves the rig file with the new action into --out). Prints one summary line per video; returns
non-zero if any video failed.
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
from .props import ROOT_ITEMS
from .retarget_apply import RetargetOptions
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
    g = p.add_argument_group("retargeting onto your rig")
    g.add_argument("--rig", default="", metavar="FILE.blend",
                   help="open this .blend for each input instead of an empty scene (the file is not changed)")
    g.add_argument("--target", default="", metavar="NAME", help="the armature object in --rig to animate")
    g.add_argument("--bone-map", default="", metavar="FILE.json",
                   help="a saved custom bone map (default: detect the preset from the bone names)")
    g.add_argument("--root-motion", choices=[i[0] for i in ROOT_ITEMS], default="bone",
                   help="where the root translation goes: the root bone (default), the armature object, "
                        "or in place (path on an empty)")
    g.add_argument("--rigify-leg-ik", action="store_true",
                   help="Rigify rig: key the legs' IK controls (IK_FK = 0) instead of leaving them in FK")
    p.add_argument("--foot-lock", type=float, default=1.0, metavar="STRENGTH",
                   help="0..1: hold the feet in place on contact frames (default 1)")
    return p


def _armatures() -> str:
    names = sorted(o.name for o in bpy.data.objects if o.type == 'ARMATURE')
    return ", ".join(repr(n) for n in names) if names else "none"


def _open_rig(path: str, target: str) -> str | None:
    """Open ``path`` (replacing the session's file) and check ``target`` in it: an error message or None."""
    try:
        bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
    except RuntimeError as e:
        return f"cannot open --rig {path}: {str(e).strip()}"
    obj = bpy.data.objects.get(target)
    if obj is None:
        return f"no object '{target}' in {path}; armatures there: {_armatures()}"
    if obj.type != 'ARMATURE':
        return f"'{target}' in {path} is a {obj.type.lower()}, not an armature; armatures there: {_armatures()}"
    return None


def _check_rig_args(args: argparse.Namespace) -> str | None:
    """Problems with the retargeting options (before anything is written), or None."""
    if not (0.0 <= args.foot_lock <= 1.0):
        return f"--foot-lock must be between 0 and 1, got {args.foot_lock}"
    if not args.rig:
        used = [o for o, v in (("--target", args.target), ("--bone-map", args.bone_map),
                               ("--rigify-leg-ik", args.rigify_leg_ik),
                               ("--root-motion", args.root_motion != "bone")) if v]
        return f"{', '.join(used)} need(s) --rig FILE.blend" if used else None
    if not args.target:
        return "--rig needs --target NAME (the armature to animate)"
    if not os.path.isfile(args.rig):
        return f"--rig file not found: {args.rig}"
    if args.bone_map and not os.path.isfile(args.bone_map):
        return f"--bone-map file not found: {args.bone_map}"
    return None


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
    if args.rig:
        args.rig = os.path.abspath(args.rig)
    if args.bone_map:
        args.bone_map = os.path.abspath(args.bone_map)
    problem = _check_rig_args(args)
    if problem is None and args.rig:
        problem = _open_rig(args.rig, args.target)   # a missing target stops the batch before any output
    if problem:
        print(f"video_mocap: {problem}", file=sys.stderr)
        return 2
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
    rig_opts = RetargetOptions(preset="custom" if args.bone_map else "auto", map_file=args.bone_map,
                               root_motion=args.root_motion, foot_lock=args.foot_lock,
                               rigify_leg_ik=args.rigify_leg_ik)

    def fresh_scene() -> str | None:
        """An emptied scene, or the rig file opened again (each output gets only its own action)."""
        if not args.rig:
            _clear_scene()
            return None
        return _open_rig(args.rig, args.target)
    failures = 0
    stems = output_stems(list(args.result) + list(args.videos))   # unique across results and videos
    for res, stem in zip(args.result, stems[:len(args.result)]):   # saved results: the operator's code, no engine
        problem = fresh_scene()
        if problem:
            ok, msg, name = False, problem, ""
        else:   # the operator's code path (ops_result), for a new armature and for the user's rig alike
            ok, msg, name = ops_result.import_result_file(
                bpy.context, os.path.abspath(res), target=args.target, preset=rig_opts.preset,
                map_file=rig_opts.map_file, root_motion=rig_opts.root_motion, shot=args.shot,
                foot_lock=rig_opts.foot_lock, rigify_leg_ik=rig_opts.rigify_leg_ik)
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
        problem = fresh_scene()
        if problem:
            failures += 1
            print(f"FAILED {video}: {problem}", flush=True)
            continue
        keep = str(out_dir / f"{stem}.npz") if args.keep_result else ""
        session = ImportSession(ImportRequest(video=video, options=opts, set_scene=True, target=args.target,
                                              engine_python=engine_python, keep_result=keep,
                                              stall_timeout=args.stall_timeout or None, shot=args.shot,
                                              retarget=rig_opts))
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
        print("usage: blender -b -c video_mocap convert VIDEO... --out DIR [--format blend|bvh|fbx|glb] "
              "[--rig FILE.blend --target NAME]", file=sys.stderr)
        return 2
    return convert(argv[1:])


def register() -> None:
    if hasattr(bpy.utils, "register_cli_command"):
        _handle.append(bpy.utils.register_cli_command("video_mocap", cli_command))


def unregister() -> None:
    while _handle:
        bpy.utils.unregister_cli_command(_handle.pop())
