"""Names shared by the bpy modules."""

from __future__ import annotations

from pathlib import Path

# The extension's package (``bl_ext.<repo>.video_mocap``, or ``video_mocap`` when scripts/convert.py
# loads the repository by path): this module is ``<package>.addon.blender.names``.
ADDON_PACKAGE: str = str(__package__).rsplit(".", 2)[0]
# The folder that holds ``engine/`` (the extension root): cwd/PYTHONPATH of the engine subprocess.
ENGINE_ROOT: Path = Path(__file__).resolve().parents[2]
# Custom property on armature data created by the add-on: the joint names it was built from.
SKELETON_PROP = "video_mocap_joints"
RETARGET_MESSAGE = ("Retargeting onto other rigs is not supported yet: pick an armature made by Video Mocap, "
                    "or none to create one")
