"""The recovered body mesh in the scene (bpy): a mesh object parented to the new armature, deformed by
an Armature modifier through one vertex group per bone. Data and checks: ``core.result.BodyMesh``;
the grouping of weights: ``core.body``. Runs inside the import's SceneTransaction (a failure removes
the mesh with everything else)."""

from __future__ import annotations

import bpy
import numpy as np

from ..core import body
from ..core.result import MotionResult

BODY_PROP = "video_mocap_body"


def build_body(context: bpy.types.Context, armature: bpy.types.Object, result: MotionResult,
               name: str) -> bpy.types.Object:
    """A new mesh object ``<name>_body`` skinned to ``armature`` (a Video Mocap armature at rest =
    the result's T-pose, so the mesh's rest vertices are in its armature space)."""
    m = result.mesh
    assert m is not None
    me = bpy.data.meshes.new(f"{name}_body")
    V, F = len(m.vertices), len(m.faces)
    me.vertices.add(V)
    me.vertices.foreach_set("co", m.vertices.astype(np.float32).ravel())
    me.loops.add(3 * F)
    me.loops.foreach_set("vertex_index", m.faces.astype(np.int32).ravel())
    me.polygons.add(F)
    me.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    if bpy.app.version < (4, 0, 0):   # loop_total is derived from loop_start from 4.0 on
        me.polygons.foreach_set("loop_total", np.full(F, 3, dtype=np.int32))
    me.update()
    if me.validate():
        raise ValueError("the body mesh from the result file is not a valid mesh")
    me.shade_smooth()
    obj = bpy.data.objects.new(me.name, me)
    (armature.users_collection[0] if armature.users_collection else context.scene.collection).objects.link(obj)
    obj.parent = armature
    obj[BODY_PROP] = True
    groups = {n: obj.vertex_groups.new(name=n) for n in result.joint_names}
    for b in body.weight_batches(m, result.joint_names):
        groups[b.group].add(b.indices.tolist(), b.weight, 'REPLACE')
    mod = obj.modifiers.new("Armature", 'ARMATURE')
    mod.object = armature
    mod.use_vertex_groups = True
    return obj
