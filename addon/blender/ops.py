"""Operators: the video import (modal, blocking in background mode), cancel, engine check and set-up."""

from __future__ import annotations

import threading
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core import engine as core_engine
from . import prefs
from .props import (CAMERA_ITEMS, DEVICE_ITEMS, body_mesh_property, foot_lock_property,
                    keypoint_quality_property, rigify_leg_ik_property, shot_property)
from .retarget_apply import RetargetOptions
from .session import ImportRequest, ImportSession

# The running import's session (at most one); Python objects cannot live on bpy data.
_ACTIVE: dict[str, Any] = {}


def _tag_redraw(context: bpy.types.Context) -> None:
    wm = context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {'VIEW_3D', 'PREFERENCES'}:
                area.tag_redraw()


def _set_status(context: bpy.types.Context, text: str | None) -> None:
    if context.workspace is not None:
        context.workspace.status_text_set(text)


class IMPORT_ANIM_OT_video_mocap(bpy.types.Operator, ImportHelper):
    """Track the person in a video and import the motion as a keyframed armature"""

    bl_idname = "import_anim.video_mocap"
    bl_label = "Import Motion from Video"
    bl_options = {'REGISTER', 'UNDO'}

    filter_glob: StringProperty(default="*" + ";*".join(core_engine.VIDEO_EXTENSIONS), options={'HIDDEN'})  # type: ignore[valid-type]
    frame_start: IntProperty(name="First Frame", min=0, default=0)  # type: ignore[valid-type]
    frame_end: IntProperty(name="Last Frame", min=-1, default=-1, description="-1 for the end of the video")  # type: ignore[valid-type]
    target: StringProperty(  # type: ignore[valid-type]
        name="Armature", description="Armature made by Video Mocap to receive the motion; empty creates one")
    camera: EnumProperty(name="Camera", items=CAMERA_ITEMS, default="auto")  # type: ignore[valid-type]
    focal_px: FloatProperty(name="Focal Length (px)", min=0.0, default=0.0, description="0 = unknown")  # type: ignore[valid-type]
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")  # type: ignore[valid-type]
    keypoint_quality: keypoint_quality_property()  # type: ignore[valid-type]
    set_scene: BoolProperty(name="Set Scene FPS and Range", default=True)  # type: ignore[valid-type]
    shot: shot_property()  # type: ignore[valid-type]
    body_mesh: body_mesh_property()  # type: ignore[valid-type]
    foot_lock: foot_lock_property()  # type: ignore[valid-type]
    rigify_leg_ik: rigify_leg_ik_property()  # type: ignore[valid-type]
    direct: BoolProperty(default=False, options={'HIDDEN', 'SKIP_SAVE'})  # type: ignore[valid-type]

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        col = layout.column(align=True)
        col.prop(self, "frame_start")
        col.prop(self, "frame_end")
        layout.prop_search(self, "target", context.scene, "objects")
        layout.prop(self, "camera")
        layout.prop(self, "focal_px")
        layout.prop(self, "device")
        layout.prop(self, "keypoint_quality")
        layout.prop(self, "set_scene")
        layout.prop(self, "shot")
        row = layout.row()
        row.enabled = not self.target
        row.prop(self, "body_mesh")
        layout.prop(self, "foot_lock")
        layout.prop(self, "rigify_leg_ik")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if self.direct:
            return self.execute(context)
        if self.properties.is_property_set("filepath"):   # drag and drop (FileHandler)
            return self.invoke_popup(context)
        return ImportHelper.invoke(self, context, event)

    def _request(self) -> ImportRequest:
        opts = core_engine.RunOptions(frame_start=self.frame_start, frame_end=self.frame_end,
                                      camera=self.camera, focal_px=self.focal_px, device=self.device,
                                      keypoint_quality=self.keypoint_quality)
        return ImportRequest(video=self.filepath, options=opts, target=self.target, set_scene=self.set_scene,
                             shot=self.shot,
                             retarget=RetargetOptions(body_mesh=self.body_mesh, foot_lock=self.foot_lock,
                                                      rigify_leg_ik=self.rigify_leg_ik))

    def execute(self, context: bpy.types.Context) -> set[str]:
        job_state = context.window_manager.vidmocap_job
        if job_state.running:
            self.report({'ERROR'}, "A video import is already running")
            return {'CANCELLED'}
        session = ImportSession(self._request())
        if bpy.app.background or context.window is None:
            ok, msg = session.run_blocking(context)
            return self._end(context, session, ok, msg)
        err = session.start(context)
        if err:
            session.cleanup()
            return self._end(context, session, False, err)
        _ACTIVE["session"] = session
        job_state.running, job_state.cancel_requested = True, False
        job_state.progress, job_state.status = 0.0, "Starting engine"
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        _set_status(context, "Video Mocap: starting engine (Esc to cancel)")
        return {'RUNNING_MODAL'}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        session: ImportSession = _ACTIVE["session"]
        job_state = context.window_manager.vidmocap_job
        assert session.job is not None
        if event.type == 'ESC' and event.value == 'PRESS':
            job_state.cancel_requested = True
        if job_state.cancel_requested and not session.job.cancel_requested:
            session.cancel()
        if event.type != 'TIMER' or event.timer is not self._timer:
            return {'RUNNING_MODAL'} if event.type == 'ESC' else {'PASS_THROUGH'}
        if session.job.poll() or session.job.cancel_requested:
            job_state.progress, job_state.status = session.job.fraction, session.job.status
            _set_status(context, f"Video Mocap: {session.job.status} ({session.job.fraction:.0%}), Esc to cancel")
            _tag_redraw(context)
        if not session.job.finished:
            return {'RUNNING_MODAL'}
        context.window_manager.event_timer_remove(self._timer)
        _set_status(context, None)
        _ACTIVE.pop("session", None)
        ok, msg = session.finish(context)
        return self._end(context, session, ok, msg)

    def cancel(self, context: bpy.types.Context) -> None:   # Blender quits or the window closes
        session = _ACTIVE.pop("session", None)
        if session is not None:
            session.cleanup()
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.vidmocap_job.running = False

    def _end(self, context: bpy.types.Context, session: ImportSession, ok: bool, msg: str) -> set[str]:
        job_state = context.window_manager.vidmocap_job
        job_state.running, job_state.cancel_requested = False, False
        job_state.last_ok, job_state.last_message = ok, msg
        job_state.status = ""
        for w in session.warnings:
            self.report({'WARNING'}, w)
        _tag_redraw(context)
        if ok:
            self.report({'INFO'}, msg)
            return {'FINISHED'}
        self.report({'WARNING'} if msg == "Cancelled" else {'ERROR'}, msg)
        return {'CANCELLED'}


class VIDMOCAP_OT_run(bpy.types.Operator):
    """Import the panel's video with the panel's options"""

    bl_idname = "vidmocap.run"
    bl_label = "Import Motion"
    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not context.window_manager.vidmocap_job.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.vidmocap
        kwargs = dict(filepath=bpy.path.abspath(s.video), frame_start=s.frame_start, frame_end=s.frame_end,
                      target=s.target.name if s.target else "", camera=s.camera, focal_px=s.focal_px,
                      device=s.device, keypoint_quality=s.keypoint_quality, set_scene=s.set_scene, shot=s.shot,
                      body_mesh=s.body_mesh, foot_lock=s.foot_lock, rigify_leg_ik=s.rigify_leg_ik, direct=True)
        if bpy.app.background:
            return bpy.ops.import_anim.video_mocap('EXEC_DEFAULT', **kwargs)
        return bpy.ops.import_anim.video_mocap('INVOKE_DEFAULT', **kwargs)


class VIDMOCAP_OT_cancel(bpy.types.Operator):
    """Cancel the running video import"""

    bl_idname = "vidmocap.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.window_manager.vidmocap_job.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.window_manager.vidmocap_job.cancel_requested = True
        return {'FINISHED'}


class VIDMOCAP_OT_check_engine(bpy.types.Operator):
    """Run the engine's self-check (in a thread: it imports torch) and show its state in the preferences"""

    bl_idname = "vidmocap.check_engine"
    bl_label = "Check Engine"

    def execute(self, context: bpy.types.Context) -> set[str]:
        self._python = prefs.engine_python(context)
        self._status: list[core_engine.EngineStatus] = []
        self._thread = threading.Thread(target=lambda: self._status.append(
            core_engine.check_engine(self._python, prefs.engine_root())), daemon=True)
        self._thread.start()
        if bpy.app.background or context.window is None:
            self._thread.join()
            return self._end()
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.window_manager.vidmocap_job.status = "Checking engine"
        return {'RUNNING_MODAL'}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != 'TIMER' or event.timer is not self._timer or self._thread.is_alive():
            return {'PASS_THROUGH'}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.vidmocap_job.status = ""
        _tag_redraw(context)
        return self._end()

    def _end(self) -> set[str]:
        status = self._status[0]
        prefs.STATUS_CACHE[str(self._python)] = status
        self.report({'INFO'} if status.ok else {'ERROR'}, status.message)
        return {'FINISHED'} if status.ok else {'CANCELLED'}


class VIDMOCAP_OT_setup_engine(bpy.types.Operator):
    """Create the engine's own Python environment (downloads about 2.5 GB; never touches Blender's Python)"""

    bl_idname = "vidmocap.setup_engine"
    bl_label = "Set Up Engine"

    heavy_only: BoolProperty(  # type: ignore[valid-type]
        name="Only BlazePose Heavy", default=False, options={'SKIP_SAVE'},
        description="Only add BlazePose Heavy (npm package @mediapipe/pose, ~41 MB, needs npm) to the engine "
                    "environment in use")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not context.window_manager.vidmocap_job.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        venv = prefs.default_venv()
        if self.heavy_only:   # into the environment in use (the preference's Python, or the add-on's own)
            venv = core_engine.venv_of(prefs.engine_python(context)) or venv
        script = prefs.engine_root() / "engine" / "setup_env.py"
        if venv is None:
            self.report({'ERROR'}, "Set-up needs the add-on installed as an extension")
            return {'CANCELLED'}
        if not script.is_file():
            self.report({'ERROR'}, f"Set-up script missing: {script}")
            return {'CANCELLED'}
        root = prefs.engine_root()
        self._job = core_engine.EngineJob(core_engine.setup_argv(root, venv, heavy_only=self.heavy_only), cwd=root,
                                          env=core_engine.engine_env(root))
        self._job.start()
        if bpy.app.background or context.window is None:
            self._job.wait()
            return self._end(context)
        state = context.window_manager.vidmocap_job
        state.running, state.progress, state.status = True, 0.0, "Setup: starting"
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != 'TIMER' or event.timer is not self._timer:
            return {'PASS_THROUGH'}
        self._job.poll()
        state = context.window_manager.vidmocap_job
        state.status = "Setup: " + (self._job.last_log or "working")
        _tag_redraw(context)
        if not self._job.finished:
            return {'RUNNING_MODAL'}
        context.window_manager.event_timer_remove(self._timer)
        return self._end(context)

    def _end(self, context: bpy.types.Context) -> set[str]:
        state = context.window_manager.vidmocap_job
        state.running, state.status = False, ""
        if self._job.start_error or self._job.returncode != 0:
            msg = self._job.start_error or f"Engine set-up failed: {self._job.last_log or self._job.returncode}"
            self.report({'ERROR'}, msg)
            return {'CANCELLED'}
        python = prefs.engine_python(context)
        prefs.STATUS_CACHE[str(python)] = core_engine.check_engine(python, prefs.engine_root())
        self.report({'INFO'}, "BlazePose Heavy installed" if self.heavy_only else "Engine set up")
        return {'FINISHED'}


classes = (IMPORT_ANIM_OT_video_mocap, VIDMOCAP_OT_run, VIDMOCAP_OT_cancel, VIDMOCAP_OT_check_engine,
           VIDMOCAP_OT_setup_engine)


register, unregister = bpy.utils.register_classes_factory(classes)  # unregisters in reverse
