"""Scene settings (``Scene.vidmocap``) and job state (``WindowManager.vidmocap_job``, never saved)."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from ..core import retarget

CAMERA_ITEMS = [
    ("auto", "Auto", "Detect whether the camera moves"),
    ("static", "Static", "The camera does not move (tripod)"),
    ("moving", "Moving", "The camera moves (hand-held, panning)"),
]
DEVICE_ITEMS = [
    ("auto", "Auto", "Use the GPU when the engine finds one"),
    ("cpu", "CPU", "Run on the CPU"),
    ("cuda", "CUDA", "Run on an NVIDIA GPU"),
]
KEYPOINT_QUALITY_ITEMS = [
    ("full", "Full", "BlazePose Full: ships with the engine, about 40 frames/s on a laptop CPU"),
    ("heavy", "Heavy", "BlazePose Heavy: keeps the person in more hard frames, about 3-5x slower; installed "
                       "once from the add-on preferences (Install BlazePose Heavy) or engine/setup_env.py "
                       "--heavy-only"),
]

PRESET_ITEMS = [("auto", "Auto-detect", "Pick the preset from the rig's bone names")] + [
    (n, m.label, f"Bone map preset: {m.label}") for n, m in retarget.presets().items()] + [
    ("custom", "Custom Map File", "A bone map saved as JSON (see the mapping editor)")]
ROOT_ITEMS = [
    ("bone", "Root Bone", "The hips/root bone carries the translation"),
    ("object", "Armature Object", "The armature object moves; the root bone only rotates"),
    ("in_place", "In Place", "Horizontal path on a separate empty; the rig keeps its vertical motion"),
]



def shot_property() -> Any:
    return IntProperty(name="Shot", min=0, default=0,
                       description="Import only this shot (1 = the first) of a video with cuts; 0 imports all shots")


def keypoint_quality_property() -> Any:
    return EnumProperty(name="Keypoint Quality", items=KEYPOINT_QUALITY_ITEMS, default="full",
                        description="BlazePose model that finds the body in each frame")


def body_mesh_property() -> Any:
    return BoolProperty(name="Body Mesh", default=True,
                        description="Add the recovered body, skinned to the new armature (only when no target "
                                    "armature is given and the result has a body mesh)")


def foot_lock_property() -> Any:
    return FloatProperty(name="Foot Lock", min=0.0, max=1.0, default=1.0, subtype='FACTOR',
                         description="Hold the feet in place where the result marks foot contact (IK on the "
                                     "legs, baked to keys); 0 = the motion as solved")


def rigify_leg_ik_property() -> Any:
    return BoolProperty(name="Rigify Legs in IK", default=False,
                        description="On a Rigify rig: key the legs' IK controls (foot, toe, knee pole) from the "
                                    "retargeted pose, feet held on contact by Foot Lock, and switch the legs to IK")


class VIDMOCAP_PG_map_row(bpy.types.PropertyGroup):
    """One row of the mapping editor: a bone of the target rig and the result joint that drives it."""

    bone: StringProperty(name="Bone")  # type: ignore[valid-type]
    joint: StringProperty(name="Joint")  # type: ignore[valid-type]


def _is_armature(_self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == 'ARMATURE'


class VIDMOCAP_PG_settings(bpy.types.PropertyGroup):
    """Options of the import, shown in the sidebar panel (the file import dialog has the same)."""

    video: StringProperty(name="Video", subtype='FILE_PATH', description="Video of one person to import")  # type: ignore[valid-type]
    frame_start: IntProperty(name="First Frame", min=0, default=0, description="First video frame to process (0-based)")  # type: ignore[valid-type]
    frame_end: IntProperty(  # type: ignore[valid-type]
        name="Last Frame", min=-1, default=-1, description="Last video frame to process; -1 for the end of the video")
    target: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,  # type: ignore[valid-type]
                            description="Armature to receive the motion (retargeted when it is not a Video Mocap armature); empty creates a new one")
    camera: EnumProperty(name="Camera", items=CAMERA_ITEMS, default="auto")  # type: ignore[valid-type]
    focal_px: FloatProperty(  # type: ignore[valid-type]
        name="Focal Length (px)", min=0.0, default=0.0, description="Focal length in pixels if known; 0 = unknown")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")  # type: ignore[valid-type]
    keypoint_quality: keypoint_quality_property()  # type: ignore[valid-type]
    set_scene: BoolProperty(  # type: ignore[valid-type]
        name="Set Scene FPS and Range", default=True, description="Match the scene frame rate and range to the video")
    shot: shot_property()  # type: ignore[valid-type]
    result_file: StringProperty(name="Result", subtype='FILE_PATH',  # type: ignore[valid-type]
                                description="A saved Video Mocap result (.npz) to import without the engine")
    preset: EnumProperty(name="Bone Map", items=PRESET_ITEMS, default="auto")  # type: ignore[valid-type]
    map_file: StringProperty(name="Map File", subtype='FILE_PATH',  # type: ignore[valid-type]
                             description="Custom bone map (JSON)")
    root_motion: EnumProperty(name="Root Motion", items=ROOT_ITEMS, default="bone")  # type: ignore[valid-type]
    body_mesh: body_mesh_property()  # type: ignore[valid-type]
    foot_lock: foot_lock_property()  # type: ignore[valid-type]
    rigify_leg_ik: rigify_leg_ik_property()  # type: ignore[valid-type]
    map_rows: CollectionProperty(type=VIDMOCAP_PG_map_row)  # type: ignore[valid-type]
    map_root: StringProperty(name="Root Bone", description="Bone that carries the root motion")  # type: ignore[valid-type]


class VIDMOCAP_PG_job(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)  # type: ignore[valid-type]
    cancel_requested: BoolProperty(default=False)  # type: ignore[valid-type]
    progress: FloatProperty(default=0.0, min=0.0, max=1.0)  # type: ignore[valid-type]
    status: StringProperty(default="")  # type: ignore[valid-type]
    last_message: StringProperty(default="")  # type: ignore[valid-type]
    last_ok: BoolProperty(default=True)  # type: ignore[valid-type]


classes = (VIDMOCAP_PG_map_row, VIDMOCAP_PG_settings, VIDMOCAP_PG_job)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)
    bpy.types.Scene.vidmocap = PointerProperty(type=VIDMOCAP_PG_settings)
    bpy.types.WindowManager.vidmocap_job = PointerProperty(type=VIDMOCAP_PG_job)


def unregister() -> None:
    del bpy.types.WindowManager.vidmocap_job
    del bpy.types.Scene.vidmocap
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
