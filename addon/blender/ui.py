"""Menu entry, sidebar panel (View3D > Sidebar > Mocap) and drag-and-drop FileHandler."""

from __future__ import annotations

import bpy

from ..core.engine import VIDEO_EXTENSIONS


class VIDMOCAP_PT_main(bpy.types.Panel):
    bl_label = "Motion from Video"
    bl_idname = "VIDMOCAP_PT_main"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Mocap"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.vidmocap
        job = context.window_manager.vidmocap_job
        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        col.enabled = not job.running
        col.prop(s, "video")
        sub = col.column(align=True)
        sub.prop(s, "frame_start")
        sub.prop(s, "frame_end")
        col.prop(s, "target")
        col.prop(s, "camera")
        col.prop(s, "focal_px")
        col.prop(s, "device")
        col.prop(s, "keypoint_quality")
        col.prop(s, "set_scene")
        col.prop(s, "shot")
        row = col.row()
        row.enabled = s.target is None
        row.prop(s, "body_mesh")
        col.prop(s, "foot_lock")
        col.prop(s, "rigify_leg_ik")
        if job.running:
            layout.progress(factor=job.progress, type='BAR', text=job.status or "Running")
            layout.operator("vidmocap.cancel", icon='CANCEL')
        else:
            layout.operator("vidmocap.run", icon='ARMATURE_DATA')
            if job.last_message:
                layout.label(text=job.last_message, icon='CHECKMARK' if job.last_ok else 'ERROR')
            layout.operator("vidmocap.export", icon='EXPORT')


class VIDMOCAP_FH_video(bpy.types.FileHandler):
    bl_idname = "VIDMOCAP_FH_video"
    bl_label = "Motion from Video"
    bl_import_operator = "import_anim.video_mocap"
    bl_file_extensions = ";".join(e for e in VIDEO_EXTENSIONS if e != ".m4v")

    @classmethod
    def poll_drop(cls, context: bpy.types.Context) -> bool:
        return context.area is not None and context.area.type == 'VIEW_3D'


def menu_func_import(self: bpy.types.Menu, _context: bpy.types.Context) -> None:
    self.layout.operator("import_anim.video_mocap", text="Motion from Video (.mp4, .mov, ...)")


classes = (VIDMOCAP_PT_main, VIDMOCAP_FH_video)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)
    bpy.types.TOPBAR_MT_file_import.append(menu_func_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_func_import)
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
