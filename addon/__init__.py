"""Video Mocap add-on: ``core`` is pure Python (numpy), ``blender`` holds everything that touches bpy.

``blender`` is imported lazily so that ``addon.core`` can be imported (and tested) without bpy.
"""


def register() -> None:
    from . import blender

    blender.register()


def unregister() -> None:
    from . import blender

    blender.unregister()
