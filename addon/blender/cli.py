"""Batch conversion: ``blender -b -c video_mocap convert VIDEO... --out DIR [--format ...]``.

Also used by scripts/convert.py (``blender -b -P scripts/convert.py -- ...``). Each video is run
through the engine, applied to a fresh armature in an emptied scene and written with Blender's own
exporters. Prints one summary line per video; returns non-zero if any video failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import bpy

from ..core import engine as core_engine
from . import ops_result
from .session import ImportRequest, ImportSession

FORMATS = ("blend", "bvh", "fbx", "glb")
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
    p.add_argument("--focal", type=float, default=0.0, help="focal length in pixels (0 = unknown)")
    p.add_argument("--frame-start", type=int, default=0)
    p.add_argument("--frame-end", type=int, default=-1)
    p.add_argument("--keep-result", action="store_true",
                   help="also write the engine's result file (VIDEO.npz) into the output folder")
    return p


def _clear_scene() -> None:
    """Remove everything the previous video (or the startup file) left in the session."""
    ids: list[Any] = [*bpy.data.objects, *bpy.data.actions, *bpy.data.armatures, *bpy.data.meshes,
                      *bpy.data.cameras, *bpy.data.lights]
    bpy.data.batch_remove(ids)


def _export(obj: bpy.types.Object, path: Path, fmt: str) -> None:
    ctx = bpy.context
    ctx.view_layer.objects.active = obj
    obj.select_set(True)
    scene = ctx.scene
    if fmt == "blend":
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True, check_existing=False)
    elif fmt == "bvh":
        bpy.ops.export_anim.bvh(filepath=str(path), check_existing=False, frame_start=scene.frame_start,
                                frame_end=scene.frame_end, rotate_mode='NATIVE', root_transform_only=True)
    elif fmt == "fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), check_existing=False, use_selection=True,
                                 object_types={'ARMATURE'}, add_leaf_bones=False, bake_anim=True,
                                 bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False)
    elif fmt == "glb":
        bpy.ops.export_scene.gltf(filepath=str(path), check_existing=False, export_format='GLB',
                                  use_selection=True, export_animations=True)
    else:  # pragma: no cover - argparse restricts the choices
        raise ValueError(fmt)
    if not path.is_file() or path.stat().st_size == 0:
        raise OSError(f"the exporter wrote nothing to {path}")


def convert(argv: list[str]) -> int:
    """Entry point of the ``convert`` command; ``argv`` excludes the command name. Exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"video_mocap: cannot create output folder {out_dir}: {e}", file=sys.stderr)
        return 2
    if not os.access(out_dir, os.W_OK):
        print(f"video_mocap: output folder is not writable: {out_dir}", file=sys.stderr)
        return 2
    opts = core_engine.RunOptions(frame_start=args.frame_start, frame_end=args.frame_end,
                                  camera=args.camera, focal_px=args.focal, device=args.device)
    if not args.videos and not args.result:
        print("video_mocap: give videos and/or --result files", file=sys.stderr)
        return 2
    failures = 0
    for res in args.result:   # saved results: the same import code as the operator, no engine
        _clear_scene()
        ok, msg, name = ops_result.import_result_file(bpy.context, res)
        target = out_dir / f"{Path(res).stem}.{args.format}"
        if ok:
            try:
                _export(bpy.data.objects[name], target, args.format)
                msg = f"{msg} -> {target}"
            except (OSError, RuntimeError, ValueError) as e:
                ok, msg = False, f"export failed: {e}"
        failures += not ok
        print(f"{'OK' if ok else 'FAILED'} {res}: {msg}", flush=True)
    for video in args.videos:
        _clear_scene()
        keep = str(out_dir / f"{Path(video).stem}.npz") if args.keep_result else ""
        session = ImportSession(ImportRequest(video=video, options=opts, set_scene=True,
                                              engine_python=args.engine_python, keep_result=keep))
        ok, msg = session.run_blocking(bpy.context)
        target = out_dir / f"{Path(video).stem}.{args.format}"
        if ok:
            try:
                _export(bpy.data.objects[session.obj_name], target, args.format)
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
