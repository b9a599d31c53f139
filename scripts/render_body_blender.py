"""Render what the add-on builds: a result imported through ``import_anim.video_mocap_result`` (new
armature + body mesh, deformed by Blender's Armature modifier), seen through the result's camera with
the Workbench engine and laid over the footage.

    python -m scripts.render_body_blender RESULT.npz --out body.png [--frames 4] [--video VIDEO] [--rigify [--fit] [--leg-ik]]

``--rigify``: instead of the add-on's own armature and body, a Rigify rig is generated (human metarig ->
Generate Rig), the result is retargeted onto it through the same operator (preset detected), and a
stand-in character (one capsule per deforming ``DEF-`` bone, bone-parented) is rendered: what a user
sees when the motion drives a Rigify character.

Blender's camera is the result's (intrinsics -> lens and sensor, per-frame extrinsics -> camera
matrix, OpenCV -> Blender camera axes by engine.geometry.frames.BLENDER_CAM_TO_CV_4); the film is
transparent and the render is alpha-blended over the video frame with OpenCV. Needs bpy (the module)
and the engine environment (PyAV, OpenCV). One row of ``--frames`` evenly spaced frames.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from engine.geometry.frames import BLENDER_CAM_TO_CV_4
from engine.result import read_result
from engine.video import VideoReader
from scripts.convert import _load_package
from scripts.vmkit.bpy_exit import exit_process


def _camera(bpy, K: np.ndarray, size: tuple[int, int]):
    cam = bpy.data.cameras.new("result_camera")
    W, H = size
    cam.sensor_fit = 'HORIZONTAL'
    cam.sensor_width = 36.0
    cam.lens = float(K[0, 0]) * 36.0 / W
    cam.shift_x = -(float(K[0, 2]) - W / 2) / W
    cam.shift_y = (float(K[1, 2]) - H / 2) / W
    cam.clip_start, cam.clip_end = 0.05, 200.0
    obj = bpy.data.objects.new("result_camera", cam)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.scene.camera = obj
    return obj


def _rigify_character(bpy) -> str:
    """Generate a Rigify rig from the human metarig and give its DEF- bones capsules; returns the rig's name."""
    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    bpy.ops.object.mode_set(mode='OBJECT')
    rig = bpy.data.objects["rig"]
    bpy.data.objects["metarig"].hide_render = True
    rig.hide_render = True
    for bone in rig.data.bones:
        if not bone.name.startswith("DEF-") or bone.length < 0.03:
            continue
        radius = 0.02 if any(k in bone.name for k in ("finger", "thumb", "palm", "f_")) else 0.045
        bpy.ops.mesh.primitive_cylinder_add(radius=radius, depth=bone.length, vertices=10)
        part = bpy.context.active_object
        part.name = f"body_{bone.name}"
        part.parent, part.parent_type, part.parent_bone = rig, 'BONE', bone.name
        # a bone-parented child sits at the bone's tail; the cylinder's axis is the bone's Y axis
        from mathutils import Matrix

        part.matrix_parent_inverse = Matrix.Identity(4)
        part.matrix_basis = Matrix.Translation((0.0, -bone.length / 2, 0.0)) @ Matrix.Rotation(1.5708, 4, 'X')
    return rig.name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result")
    ap.add_argument("--out", required=True, help="PNG")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--video", default=None, help="defaults to the video named in the result")
    ap.add_argument("--height", type=int, default=480, help="height of each tile in pixels")
    ap.add_argument("--rigify", action="store_true", help="retarget onto a generated Rigify rig (see above)")
    ap.add_argument("--fit", action="store_true",
                    help="with --rigify: scale the rig object to the result's leg length, so that the character "
                         "walks the person's path (otherwise its path is the person's times its leg-length ratio)")
    ap.add_argument("--leg-ik", action="store_true", help="with --rigify: the import's rigify_leg_ik (legs keyed in IK)")
    args = ap.parse_args(argv)

    import bpy
    from mathutils import Matrix

    r = read_result(args.result)
    W, H = (int(v) for v in r["image_size"])
    K, E = r["camera_intrinsics"].astype(np.float64), r["camera_extrinsics"].astype(np.float64)
    pkg = _load_package()
    pkg.register()
    from video_mocap.addon.blender import ops_result  # type: ignore[import-not-found]

    bpy.ops.wm.read_homefile(use_empty=True)
    target = _rigify_character(bpy) if args.rigify else ""
    if target and args.fit:
        rig = bpy.data.objects[target]
        heads = [np.array(rig.data.bones[b].head_local) for b in ("thigh_fk.L", "shin_fk.L", "foot_fk.L")]
        rig_leg = float(np.linalg.norm(heads[1] - heads[0]) + np.linalg.norm(heads[2] - heads[1]))
        names = [str(n) for n in r["joint_names"]]
        off = r["rest_offsets"]
        leg = float(np.linalg.norm(off[names.index("left_knee")]) + np.linalg.norm(off[names.index("left_ankle")]))
        rig.scale = (leg / rig_leg,) * 3
        print(f"rig scaled by {leg / rig_leg:.3f} (result leg {leg:.3f} m, rig leg {rig_leg:.3f})")
    ok, msg, name = ops_result.import_result_file(bpy.context, str(Path(args.result).resolve()), body_mesh=True,
                                                  target=target, rigify_leg_ik=args.leg_ik)
    if not ok:
        print(msg, file=sys.stderr)
        return 1
    if args.rigify:
        print(f"retargeted onto the Rigify rig: {msg}")
    scene = bpy.context.scene
    scene.render.engine = 'BLENDER_WORKBENCH'
    scene.display.shading.light = 'STUDIO'
    scene.display.shading.color_type = 'SINGLE'
    scene.display.shading.single_color = (0.45, 0.75, 1.0)
    scene.render.film_transparent = True
    scale = args.height / H
    scene.render.resolution_x, scene.render.resolution_y = int(round(W * scale)), args.height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGBA'
    bpy.data.objects[name].hide_render = True          # the bones: only the body is rendered
    cam = _camera(bpy, K, (W, H))

    T = len(r["times"])
    pick = sorted(set(np.linspace(0, T - 1, args.frames).round().astype(int).tolist()))
    renders: dict[int, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in pick:
            scene.frame_set(scene.frame_start + t)
            cam.matrix_world = Matrix((np.linalg.inv(E[t]) @ BLENDER_CAM_TO_CV_4).tolist())
            scene.render.filepath = str(Path(tmp) / f"{t}.png")
            bpy.ops.render.render(write_still=True)
            renders[t] = cv2.imread(scene.render.filepath, cv2.IMREAD_UNCHANGED)   # BGRA
    index_of = {int(f): t for t, f in enumerate(r["frame_index"])}
    tiles = {}
    with VideoReader(args.video or str(r["video_path"]), max_side=None) as reader:
        for fr in reader:
            t = index_of.get(fr.index)
            if t not in renders:
                continue
            rgba = renders[t]
            img = cv2.resize(cv2.cvtColor(np.ascontiguousarray(fr.image), cv2.COLOR_RGB2BGR),
                             (rgba.shape[1], rgba.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float64)
            a = rgba[..., 3:4].astype(np.float64) / 255.0 * 0.8
            out = (a * rgba[..., :3] + (1 - a) * img).astype(np.uint8)
            cv2.putText(out, f"frame {fr.index}", (10, out.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        (255, 255, 255), 1)
            tiles[t] = out
    cv2.imwrite(args.out, np.concatenate([tiles[t] for t in pick if t in tiles], 1))
    print(f"{args.out}: {len(tiles)} frames")
    return 0


if __name__ == "__main__":
    exit_process(main())
