"""All-or-nothing changes to the user's file: ``with SceneTransaction(context): ...``.

On entry it records what an import may touch; if the block raises (anything, even KeyboardInterrupt),
it puts everything back exactly as it was and re-raises:

- every datablock created inside the block is deleted (objects, armatures, actions, meshes,
  materials, collections, ... : every ``bpy.data`` collection is compared by pointer);
- per object: its action and action slot, and per armature the pose bones' rotation modes;
- every action's fake user; scene settings (fps, frame range, current frame, preview range, units);
- the scene's timeline markers (markers added inside the block are removed);
- the selection, the active object and its mode (Edit Mode included).

After a successful block only the mode is restored: if the user was in Edit/Pose/... Mode on an
object, that object is made active again in that mode (the new objects stay selected); from Object
Mode the new armature stays active, as after any import. The block may change modes freely.

The transaction knows nothing about what the block does, so new import steps (retargeting onto user
rigs, body meshes) run inside it unchanged.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import bpy

log = logging.getLogger(__name__)

# bpy.data collections whose new members are deleted on rollback, in deletion order (users first).
_COLLECTIONS = ("objects", "collections", "actions", "armatures", "meshes", "curves", "lattices",
                "materials", "textures", "images", "node_groups", "shape_keys", "cameras", "lights",
                "grease_pencils", "worlds")
# Scene settings restored on rollback: (attribute path below the scene).
_SCENE_SETTINGS = ("render.fps", "render.fps_base", "frame_start", "frame_end", "frame_current",
                   "frame_step", "use_preview_range", "frame_preview_start", "frame_preview_end",
                   "unit_settings.system", "unit_settings.scale_length", "unit_settings.length_unit")


def _get(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def _set(root: Any, path: str, value: Any) -> None:
    *head, last = path.split(".")
    for part in head:
        root = getattr(root, part)
    if getattr(root, last) != value:
        setattr(root, last, value)


class SceneTransaction:
    def __init__(self, context: bpy.types.Context):
        self.context = context

    # -- snapshot ---------------------------------------------------------------------------------
    def __enter__(self) -> SceneTransaction:
        ctx = self.context
        self.scene = ctx.scene
        self.view_layer = ctx.view_layer
        self.ids: dict[str, set[int]] = {}
        for name in _COLLECTIONS:
            coll = getattr(bpy.data, name, None)
            if coll is not None:
                self.ids[name] = {d.as_pointer() for d in coll}
        self.settings = {}
        for path in _SCENE_SETTINGS:
            try:
                self.settings[path] = _get(self.scene, path)
            except AttributeError:
                pass
        active = self.view_layer.objects.active
        self.active_name = active.name if active is not None else None
        self.mode = active.mode if active is not None else 'OBJECT'
        self.selected = {o.name for o in self.view_layer.objects if o.select_get()}
        self.anim: dict[str, tuple[bool, Any, Any]] = {}
        self.rot_modes: dict[str, dict[str, str]] = {}
        for obj in bpy.data.objects:
            ad = obj.animation_data
            if ad is not None:
                self.anim[obj.name] = (True, ad.action, getattr(ad, "action_slot", None))
            else:
                self.anim[obj.name] = (False, None, None)
            if obj.type == 'ARMATURE' and obj.pose is not None:
                self.rot_modes[obj.name] = {pb.name: pb.rotation_mode for pb in obj.pose.bones}
        self.fake_users = {a.name: a.use_fake_user for a in bpy.data.actions}
        self.markers = {m.as_pointer() for m in self.scene.timeline_markers}
        return self

    # -- exit ----------------------------------------------------------------------------------------
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self._restore_mode(after_success=True)
            return None
        try:
            self.rollback()
        except Exception:  # noqa: BLE001 - never hide the original error behind a rollback problem
            log.exception("Video Mocap: rolling back the import failed")
        return None   # re-raise

    def _to_object_mode(self) -> None:
        obj = self.view_layer.objects.active
        if obj is not None and obj.mode != 'OBJECT':
            try:
                bpy.ops.object.mode_set(mode='OBJECT')
            except RuntimeError:
                log.warning("Video Mocap: could not leave %s mode on %s", obj.mode, obj.name)

    def rollback(self) -> None:
        self._to_object_mode()
        # delete what the block created
        doomed: list[Any] = []
        for name, before in self.ids.items():
            coll = getattr(bpy.data, name)
            doomed += [d for d in coll if d.as_pointer() not in before]
        if doomed:
            bpy.data.batch_remove(doomed)
        # animation assignments, rotation modes, fake users
        for obj_name, (had, action, slot) in self.anim.items():
            obj = bpy.data.objects.get(obj_name)
            if obj is None:
                continue
            if not had:
                if obj.animation_data is not None:
                    obj.animation_data_clear()
                continue
            ad = obj.animation_data or obj.animation_data_create()
            if ad.action != action:
                ad.action = action
            if slot is not None and getattr(ad, "action_slot", None) != slot:
                try:
                    ad.action_slot = slot
                except (AttributeError, RuntimeError, TypeError):
                    pass
        for obj_name, modes in self.rot_modes.items():
            obj = bpy.data.objects.get(obj_name)
            if obj is None or obj.pose is None:
                continue
            for pb in obj.pose.bones:
                mode = modes.get(pb.name)
                if mode is not None and pb.rotation_mode != mode:
                    pb.rotation_mode = mode
        for action in bpy.data.actions:
            fake = self.fake_users.get(action.name)
            if fake is not None and action.use_fake_user != fake:
                action.use_fake_user = fake
        for marker in [m for m in self.scene.timeline_markers if m.as_pointer() not in self.markers]:
            self.scene.timeline_markers.remove(marker)
        for path, value in self.settings.items():
            try:
                _set(self.scene, path, value)
            except (AttributeError, TypeError, ValueError):
                pass
        # selection and active object
        for obj in self.view_layer.objects:
            want = obj.name in self.selected
            if obj.select_get() != want:
                try:
                    obj.select_set(want)
                except RuntimeError:   # hidden or excluded meanwhile
                    pass
        self.view_layer.objects.active = (bpy.data.objects.get(self.active_name)
                                          if self.active_name is not None else None)
        self._restore_mode(after_success=False)

    def _restore_mode(self, *, after_success: bool) -> None:
        if self.mode == 'OBJECT' or self.active_name is None:
            return
        obj = bpy.data.objects.get(self.active_name)
        if obj is None or obj.name not in self.view_layer.objects:
            return
        current = self.view_layer.objects.active
        if current is obj and obj.mode == self.mode:
            return
        self._to_object_mode()
        self.view_layer.objects.active = obj
        try:
            bpy.ops.object.mode_set(mode=self.mode)
        except (RuntimeError, TypeError):
            log.warning("Video Mocap: could not return %s to %s mode", obj.name, self.mode)
