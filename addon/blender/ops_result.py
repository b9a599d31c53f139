"""Import a saved result (``import_anim.video_mocap_result``), the bone-map editor operators and the
panel section for them. Registered as one module (``classes``)."""

from __future__ import annotations

import logging
import os

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core import retarget
from ..core.result import ResultError, read_result
from ..core.retarget import RetargetError
from . import apply, importer
from .props import PRESET_ITEMS, ROOT_ITEMS, body_mesh_property, foot_lock_property, rigify_leg_ik_property, shot_property
from .retarget_apply import RetargetOptions
from .transaction import SceneTransaction

log = logging.getLogger(__name__)


def import_result_file(context: bpy.types.Context, filepath: str, *, target: str = "", preset: str = "auto",
                       map_file: str = "", root_motion: str = "bone", scale: float = 0.0,
                       set_scene: bool = True, shot: int = 0, body_mesh: bool = True,
                       foot_lock: float = 1.0, rigify_leg_ik: bool = False) -> tuple[bool, str, str]:
    """Read ``filepath`` and import it (one call, so a transaction can wrap it): (ok, message, object)."""
    try:
        result = read_result(bpy.path.abspath(filepath))
        obj = None
        if target:
            obj = bpy.data.objects.get(target)
            if obj is None:
                raise apply.ApplyError(f"Armature '{target}' not found")
        importer.check_target(obj, result)
        # one transaction: on any error the scene is exactly as before (transaction.py)
        with SceneTransaction(context):
            out = importer.import_result(context, result, name=apply.action_name(result.video_path or filepath),
                                         target=obj, set_scene=set_scene,
                                         options=RetargetOptions(preset=preset, map_file=map_file,
                                                                 root_motion=root_motion, scale=scale,
                                                                 body_mesh=body_mesh, foot_lock=foot_lock,
                                                                 rigify_leg_ik=rigify_leg_ik),
                                         shot=shot)
    except (ResultError, apply.ApplyError, RetargetError) as e:
        return False, str(e), ""
    except Exception as e:  # noqa: BLE001 - a bug: the scene was rolled back; say so instead of a traceback
        log.exception("Video Mocap: importing the result file failed")
        return False, f"Import failed ({type(e).__name__}: {e}); the scene was left unchanged", ""
    return True, f"Imported {result.frames} frames onto '{out.name}'", out.name


class IMPORT_ANIM_OT_video_mocap_result(bpy.types.Operator, ImportHelper):
    """Import a saved Video Mocap result (.npz) onto a new armature or retargeted onto your rig"""

    bl_idname = "import_anim.video_mocap_result"
    bl_label = "Import Video Mocap Result"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={'HIDDEN'})  # type: ignore[valid-type]
    target: StringProperty(name="Armature", description="Armature to receive the motion; empty creates one")  # type: ignore[valid-type]
    preset: EnumProperty(name="Bone Map", items=PRESET_ITEMS, default="auto")  # type: ignore[valid-type]
    map_file: StringProperty(name="Map File", description="Custom bone map (JSON)")  # type: ignore[valid-type]
    root_motion: EnumProperty(name="Root Motion", items=ROOT_ITEMS, default="bone")  # type: ignore[valid-type]
    scale: FloatProperty(name="Scale", min=0.0, default=0.0, description="Result metres to rig units; 0 = from leg length")  # type: ignore[valid-type]
    set_scene: BoolProperty(name="Set Scene FPS and Range", default=True)  # type: ignore[valid-type]
    shot: shot_property()  # type: ignore[valid-type]
    body_mesh: body_mesh_property()  # type: ignore[valid-type]
    foot_lock: foot_lock_property()  # type: ignore[valid-type]
    rigify_leg_ik: rigify_leg_ik_property()  # type: ignore[valid-type]

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop_search(self, "target", context.scene, "objects")
        layout.prop(self, "preset")
        if self.preset == "custom":
            layout.prop(self, "map_file")
        layout.prop(self, "root_motion")
        layout.prop(self, "scale")
        layout.prop(self, "set_scene")
        layout.prop(self, "shot")
        row = layout.row()
        row.enabled = not self.target
        row.prop(self, "body_mesh")
        layout.prop(self, "foot_lock")
        layout.prop(self, "rigify_leg_ik")

    def execute(self, context: bpy.types.Context) -> set[str]:
        ok, msg, _ = import_result_file(context, self.filepath, target=self.target, preset=self.preset,
                                        map_file=self.map_file, root_motion=self.root_motion,
                                        scale=self.scale, set_scene=self.set_scene, shot=self.shot,
                                        body_mesh=self.body_mesh, foot_lock=self.foot_lock,
                                        rigify_leg_ik=self.rigify_leg_ik)
        self.report({'INFO'} if ok else {'ERROR'}, msg)
        job = context.window_manager.vidmocap_job
        job.last_ok, job.last_message = ok, msg
        return {'FINISHED'} if ok else {'CANCELLED'}


class VIDMOCAP_OT_import_result(bpy.types.Operator):
    """Import the panel's result file with the panel's options"""

    bl_idname = "vidmocap.import_result"
    bl_label = "Import Result"

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.vidmocap
        return bpy.ops.import_anim.video_mocap_result(
            'EXEC_DEFAULT', filepath=bpy.path.abspath(s.result_file), target=s.target.name if s.target else "",
            preset=s.preset, map_file=s.map_file, root_motion=s.root_motion, set_scene=s.set_scene, shot=s.shot,
            body_mesh=s.body_mesh, foot_lock=s.foot_lock, rigify_leg_ik=s.rigify_leg_ik)


class VIDMOCAP_OT_map_fill(bpy.types.Operator):
    """Fill the mapping editor from the chosen preset (or the detected one) for the panel's armature"""

    bl_idname = "vidmocap.map_fill"
    bl_label = "Fill from Preset"

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.vidmocap
        rows = s.map_rows
        rows.clear()
        names = [b.name for b in s.target.data.bones] if s.target else []
        maps = retarget.presets()
        try:
            if s.preset == "custom":
                m = retarget.load_map(bpy.path.abspath(s.map_file))
                bones, root = m.bones, m.root
            elif s.preset == "auto":
                r = retarget.detect(names, tuple(maps["engine"].bones))
                bones, root = r.bones, r.root
            else:
                bones, root = maps[s.preset].bones, maps[s.preset].root
        except retarget.RetargetError as e:
            self.report({'WARNING'}, str(e))
            bones, root = {}, ""
        for b, j in bones.items():
            row = rows.add()
            row.bone, row.joint = b, j
        s.map_root = root
        return {'FINISHED'}


class VIDMOCAP_OT_map_add(bpy.types.Operator):
    """Add a row to the mapping editor"""

    bl_idname = "vidmocap.map_add"
    bl_label = "Add Row"

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.vidmocap.map_rows.add()
        return {'FINISHED'}


class VIDMOCAP_OT_map_save(bpy.types.Operator, ExportHelper):
    """Save the mapping editor's rows as a bone map (JSON) and use it for the next import"""

    bl_idname = "vidmocap.map_save"
    bl_label = "Save Bone Map"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={'HIDDEN'})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.vidmocap
        bones = {r.bone: r.joint for r in s.map_rows if r.bone and r.joint}
        name = os.path.splitext(os.path.basename(self.filepath))[0] or "custom"
        try:
            m = retarget.parse_map({"format": retarget.BONE_MAP_FORMAT, "name": name, "label": name,
                                    "root": s.map_root, "bones": bones})
            retarget.save_map(m, self.filepath)
        except (retarget.RetargetError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        s.map_file, s.preset = self.filepath, "custom"
        self.report({'INFO'}, f"Saved {len(bones)} bones to {self.filepath}")
        return {'FINISHED'}


class VIDMOCAP_PT_result(bpy.types.Panel):
    bl_label = "Saved Result & Retarget"
    bl_idname = "VIDMOCAP_PT_result"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Mocap"
    bl_parent_id = "VIDMOCAP_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.vidmocap
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(s, "result_file")
        layout.prop(s, "preset")
        if s.preset == "custom":
            layout.prop(s, "map_file")
        layout.prop(s, "root_motion")
        layout.prop(s, "body_mesh")
        layout.prop(s, "foot_lock")
        layout.prop(s, "rigify_leg_ik")
        layout.operator("vidmocap.import_result", icon='IMPORT')
        box = layout.box()
        box.label(text="Mapping Editor")
        row = box.row(align=True)
        row.operator("vidmocap.map_fill")
        row.operator("vidmocap.map_add", text="", icon='ADD')
        if s.target is not None:
            box.prop_search(s, "map_root", s.target.data, "bones")
        for r in s.map_rows:
            line = box.row(align=True)
            if s.target is not None:
                line.prop_search(r, "bone", s.target.data, "bones", text="")
            else:
                line.prop(r, "bone", text="")
            line.prop(r, "joint", text="")
        box.operator("vidmocap.map_save", icon='FILE_TICK')


def menu_func_import(self: bpy.types.Menu, _context: bpy.types.Context) -> None:
    self.layout.operator("import_anim.video_mocap_result", text="Video Mocap Result (.npz)")


classes = (IMPORT_ANIM_OT_video_mocap_result, VIDMOCAP_OT_import_result, VIDMOCAP_OT_map_fill,
           VIDMOCAP_OT_map_add, VIDMOCAP_OT_map_save, VIDMOCAP_PT_result)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)
    bpy.types.TOPBAR_MT_file_import.append(menu_func_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_func_import)
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
