"""The body mesh written into results (engine/body_mesh.py): in the rest pose of the result's skeleton,
skinned to its joints, and validated by the result reader."""

from __future__ import annotations

import numpy as np
import pytest

from engine import result as res
from engine import skeleton as sk

pytest.importorskip("anny")


def _skeletons():
    default = sk.DEFAULT_REST_OFFSETS.copy()
    # a shorter person with long arms and a long neck: the mesh must follow these bones, not anny's
    odd = sk.DEFAULT_REST_OFFSETS * 0.92
    for n in ("left_elbow", "right_elbow", "left_wrist", "right_wrist"):
        odd[sk.INDEX[n]] *= 1.12
    odd[sk.INDEX["neck"]] *= 1.3
    return {"default": (default, 0.5), "odd": (odd, 0.35)}


@pytest.fixture(scope="module", params=["default", "odd"])
def mesh(request):
    from engine.body_mesh import mesh_fields

    rest, height = _skeletons()[request.param]
    return rest, mesh_fields(rest, ("height", "unknown_param"), (height, 0.7))


def test_mesh_members_and_size(mesh):
    _, f = mesh
    V = len(f["mesh_vertices"])
    assert f["mesh_vertices"].shape == (V, 3) and f["mesh_vertices"].dtype == np.float32
    assert f["mesh_faces"].ndim == 2 and f["mesh_faces"].shape[1] == 3 and f["mesh_faces"].max() < V
    assert f["mesh_weight_joints"].shape == f["mesh_weights"].shape == (V, 4)
    assert np.allclose(f["mesh_weights"].sum(1), 1.0, atol=1e-5) and f["mesh_weights"].min() >= 0
    assert set(np.unique(f["mesh_weight_joints"][:, 0])) == set(range(sk.J))  # every joint drives some vertices
    import io
    buf = io.BytesIO()
    np.savez_compressed(buf, **f)
    assert len(buf.getvalue()) < 2_000_000


def test_mesh_stands_in_the_skeleton_rest_pose(mesh):
    rest, f = mesh
    v = f["mesh_vertices"].astype(np.float64)
    joints = sk.rest_positions(rest)
    # height: anny's stature for the skeleton's ankle-to-head span (1.625 m stature <-> 1.405 m span)
    span = joints[sk.INDEX["head"], 2] - joints[sk.INDEX["left_ankle"], 2]
    height = v[:, 2].max() - v[:, 2].min()
    assert abs(height - 1.625 * span / 1.405) < 0.03, (height, span)
    # soles just below the ankles, on the floor the skeleton stands on (z = 0 at ankle height - ~7 cm)
    assert 0.02 < joints[sk.INDEX["left_ankle"], 2] - v[:, 2].min() < 0.10
    # arms out horizontally (T-pose): the span from fingertip to fingertip beyond the hand joints
    assert 0.0 < v[:, 0].max() - joints[sk.INDEX["left_hand"], 0] < 0.15
    assert 0.0 < joints[sk.INDEX["right_hand"], 0] - v[:, 0].min() < 0.15

    dominant = f["mesh_weight_joints"][:, 0]
    kids = sk.children()
    for j, name in enumerate(sk.JOINT_NAMES):
        sel = v[dominant == j]
        assert len(sel) >= 20, name
        # vertices weighted to the joint are around it (limbs are < 7 cm thick)
        assert np.linalg.norm(sel - joints[j], axis=1).min() < 0.07, name
        if len(kids[j]) == 1:   # and around its bone: their centroid lies near the segment joint -> child
            a, b = joints[j], joints[kids[j][0]]
            c = sel.mean(0)
            t = np.clip(np.dot(c - a, b - a) / np.dot(b - a, b - a), 0, 1)
            bound = 0.14 if name.startswith(("spine", "neck")) else 0.06   # the trunk is ~25 cm deep
            assert np.linalg.norm(c - (a + t * (b - a))) < bound, (name, np.linalg.norm(c - (a + t * (b - a))))


def test_skinned_mesh_follows_a_pose():
    """Linear blend skinning with the skeleton's FK (what Blender's Armature modifier computes) moves
    the hand's vertices with the hand: the arm raised 90 degrees puts them above the shoulder."""
    from scipy.spatial.transform import Rotation

    from engine.body_mesh import mesh_fields

    rest = sk.DEFAULT_REST_OFFSETS
    f = mesh_fields(rest, ("height",), (0.5,))
    R = np.tile(np.eye(3), (1, sk.J, 1, 1))
    R[0, sk.INDEX["left_shoulder"]] = Rotation.from_euler("y", -90, degrees=True).as_matrix()  # +X arm -> +Z
    Rw, P = sk.forward_kinematics(R, sk.rest_positions(rest)[None, 0], rest)
    p0 = sk.rest_positions(rest)
    v = f["mesh_vertices"].astype(np.float64)
    idx, w = f["mesh_weight_joints"], f["mesh_weights"]
    posed = np.einsum("vk,vki->vi", w, np.einsum("vkab,vkb->vka", Rw[0][idx], v[:, None] - p0[idx]) + P[0][idx])
    hand = (idx[:, 0] == sk.INDEX["left_hand"]) & (w[:, 0] > 0.9)
    # rigid part: distances to the hand joint are kept, and the hand is now above the shoulder
    d0 = np.linalg.norm(v[hand] - p0[sk.INDEX["left_hand"]], axis=1)
    d1 = np.linalg.norm(posed[hand] - P[0, sk.INDEX["left_hand"]], axis=1)
    assert np.abs(d1 - d0).max() < 1e-4
    assert posed[hand, 2].min() > P[0, sk.INDEX["left_shoulder"], 2] + 0.4
    assert np.abs(posed[hand, 0] - P[0, sk.INDEX["left_shoulder"], 0]).max() < 0.12


def _with_mesh(base: dict, **over) -> dict:
    d = dict(base)
    d.update(over)
    return d


def test_result_validation_of_mesh_members():
    J = sk.J
    base = {
        "joint_names": np.asarray(sk.JOINT_NAMES),
        "mesh_vertices": np.zeros((4, 3), np.float32),
        "mesh_faces": np.array([[0, 1, 2], [1, 2, 3]], np.int32),
        "mesh_weight_joints": np.zeros((4, 2), np.int32),
        "mesh_weights": np.tile(np.float32([0.5, 0.5]), (4, 1)),
    }
    assert res._mesh_problems(base) == []
    assert "incomplete" in res._mesh_problems({k: v for k, v in base.items() if k != "mesh_weights"})[0]
    assert res._mesh_problems(_with_mesh(base, mesh_faces=np.array([[0, 1, 4]], np.int32)))
    assert res._mesh_problems(_with_mesh(base, mesh_weight_joints=np.full((4, 2), J, np.int32)))
    assert res._mesh_problems(_with_mesh(base, mesh_weights=np.ones((4, 2), np.float32)))
    bad = base["mesh_vertices"].copy()
    bad[0, 0] = np.nan
    assert res._mesh_problems(_with_mesh(base, mesh_vertices=bad))


def test_vertex_group_batches_reproduce_the_weights(mesh):
    """addon/core/body.py: the batches handed to VertexGroup.add give back every weight within 1/2048."""
    from addon.core.body import WEIGHT_STEP, weight_batches
    from addon.core.result import BodyMesh

    _, f = mesh
    m = BodyMesh(vertices=f["mesh_vertices"].astype(np.float64), faces=f["mesh_faces"].astype(np.int64),
                 weight_joints=f["mesh_weight_joints"].astype(np.int64), weights=f["mesh_weights"].astype(np.float64))
    batches = weight_batches(m, sk.JOINT_NAMES)
    assert len(batches) < 10000         # ~6,400 VertexGroup.add calls for anny, not ~55,000 (one per influence)
    got = np.zeros((len(m.vertices), sk.J))
    for b in batches:
        assert not got[b.indices, sk.INDEX[b.group]].any()   # each (vertex, group) set once
        got[b.indices, sk.INDEX[b.group]] = b.weight
    want = np.zeros_like(got)
    np.add.at(want, (np.arange(len(m.vertices))[:, None], m.weight_joints), m.weights)
    assert np.abs(got - want).max() <= WEIGHT_STEP / 2 + 1e-12
