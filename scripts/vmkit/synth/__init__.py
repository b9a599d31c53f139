"""Synthetic clips of the anny body rendered with Blender (bpy), with ground truth.

Run the entry points with the project's venv python (it has both ``bpy`` and ``anny``)::

    .venv/bin/python -m scripts.make_sample_video
    .venv/bin/python -m scripts.make_devset --out .cache/devset --seed 0

Modules:
- ``cameras``: pure numpy camera maths (intrinsics, Blender -> OpenCV extrinsics, projection, look-at).
- ``body``: posed anny bodies (mocap through ``scripts.vmkit.mocap`` when available, else a procedural walk).
- ``spec``: the scene description (a dataclass) and its random sampler.
- ``scene``: builds the Blender scene from a spec (imports bpy).
- ``render``: renders a clip to H.264 mp4 and writes the ground-truth ``.npz`` (imports bpy).
- ``detect``: BlazePose detection rate on a rendered clip (a sanity check).

The ground-truth format is documented in docs/synthetic_data.md.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the repository
