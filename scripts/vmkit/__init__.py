"""The data kit: everything that makes or scores data, apart from the engine's inference path.

- ``mocap``: mocap readers (BVH, ASF/AMC), retargeting onto vm24, anny posing, synthetic BlazePose
  observations (training data).
- ``metrics``: evaluation metrics (MPJPE, PA-MPJPE, W/WA-MPJPE100, RTE, jitter, foot sliding).
- ``synth``: synthetic clips of the anny body rendered with Blender (bpy), with ground truth.

The kit imports the engine (for its skeleton and conventions); the engine never imports the kit, and
the built extension does not contain it (``/scripts/`` is excluded in ``blender_manifest.toml``).
Run the entry points from the repository root as modules, e.g. ``python -m scripts.make_devset``.
"""
