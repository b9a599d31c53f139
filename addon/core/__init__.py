"""Pure half of the add-on: no ``bpy``, no ``mathutils``, no ``engine`` import. numpy and the stdlib only.

- ``result``: reads the engine's result file (format check, ``allow_pickle=False``).
- ``rig``: armature layout and the rest-frame conversion of the result's rotations (numpy).
- ``engine``: locating the engine's Python, building its command lines, running it as a job.
"""
