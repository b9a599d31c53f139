"""Export an animated armature with Blender's own exporters (BVH, FBX, glTF binary): the one place
used by the panel's **Export Animation** operator (``vidmocap.export``) and the batch command
(``cli.py``). The file is written under a temporary name in the same folder and renamed into place, so
a failed or interrupted export never leaves a partial file nor spoils an earlier good one."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

FORMATS = ("blend", "bvh", "fbx", "glb")
EXPORT_ITEMS = (("bvh", "BVH", "Biovision hierarchy (bones and keys only)"),
                ("fbx", "FBX", "Autodesk FBX: the armature with its baked action"),
                ("glb", "glTF Binary", "glTF 2.0 binary (.glb): the armature (and its children) with the animation"))
EXTENSIONS = {"bvh": ".bvh", "fbx": ".fbx", "glb": ".glb", "blend": ".blend"}


def export_armature(obj: bpy.types.Object, path: Path, fmt: str) -> None:
    """Write ``obj`` (an armature with its action) to ``path`` in ``fmt``. The selection and the active
    object are as before afterwards. Raises OSError if the exporter wrote nothing."""
    ctx = bpy.context
    view_layer = ctx.view_layer
    active = view_layer.objects.active
    selected = [o for o in view_layer.objects if o.select_get()]
    scene = ctx.scene
    try:
        for o in selected:
            o.select_set(False)
        view_layer.objects.active = obj
        obj.select_set(True)
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
        else:
            raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    finally:
        obj.select_set(False)
        for o in selected:
            if o.name in view_layer.objects:
                o.select_set(True)
        view_layer.objects.active = active
    if not path.is_file() or path.stat().st_size == 0:
        raise OSError(f"the exporter wrote nothing to {path}")


def export_atomic(obj: bpy.types.Object, target: Path, fmt: str) -> None:
    """``export_armature`` to a temporary name beside ``target``, then renamed onto it."""
    tmp = target.with_name(f".{target.stem}.part{EXTENSIONS.get(fmt, '.' + fmt)}")
    try:
        export_armature(obj, tmp, fmt)
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def export_target(context: bpy.types.Context) -> bpy.types.Object | None:
    """The armature the panel exports: the active object if it is an armature, else the panel's target."""
    obj = context.active_object
    if obj is not None and obj.type == 'ARMATURE':
        return obj
    target = getattr(context.scene, "vidmocap", None)
    target = getattr(target, "target", None)
    return target if target is not None and target.type == 'ARMATURE' else None


class VIDMOCAP_OT_export(bpy.types.Operator, ExportHelper):
    """Export the animated armature (the active one, or the panel's target) with Blender's exporters"""

    bl_idname = "vidmocap.export"
    bl_label = "Export Animation"
    bl_options = {'REGISTER'}

    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh;*.fbx;*.glb", options={'HIDDEN'})  # type: ignore[valid-type]
    format: EnumProperty(name="Format", items=EXPORT_ITEMS, default="bvh")  # type: ignore[valid-type]
    armature: StringProperty(name="Armature", description="Armature to export; empty = the active armature or the panel's target")  # type: ignore[valid-type]

    def check(self, context: bpy.types.Context) -> bool:
        self.filename_ext = EXTENSIONS[self.format]
        return bool(super().check(context))

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return any(o.type == 'ARMATURE' for o in context.scene.objects)

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = bpy.data.objects.get(self.armature) if self.armature else export_target(context)
        if obj is None or obj.type != 'ARMATURE':
            self.report({'ERROR'}, f"No armature to export{f' named {self.armature!r}' if self.armature else ''}")
            return {'CANCELLED'}
        path = Path(bpy.path.ensure_ext(bpy.path.abspath(self.filepath), EXTENSIONS[self.format]))
        try:
            export_atomic(obj, path, self.format)
        except (OSError, RuntimeError, ValueError) as e:
            self.report({'ERROR'}, f"Export failed: {e}")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Exported '{obj.name}' to {path}")
        return {'FINISHED'}


classes = (VIDMOCAP_OT_export,)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)


def unregister() -> None:
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
