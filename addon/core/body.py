"""The body mesh's skinning as Blender wants it (numpy only): one vertex group per joint, named after
the joint's bone, filled in batches of equal weight.

Blender's ``VertexGroup.add(indices, weight, type)`` sets ONE weight for a list of vertices, and a call
per vertex and influence (~55,000 for the anny body) costs more than the rest of the import. Weights
are rounded to ``WEIGHT_STEP`` (1/1024) and each joint's vertices grouped by rounded weight: a few
hundred calls. The rounding moves a skinned vertex by at most ``WEIGHT_STEP / 2`` times the distance
between two of its joints' predictions (< 0.1 mm for a body); the Armature modifier divides by the
weight sum, so the rows need not sum to exactly 1 after rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from .result import BodyMesh

WEIGHT_STEP = 1.0 / 1024.0


@dataclass(frozen=True)
class WeightBatch:
    group: str                            # vertex group = bone = joint name
    weight: float
    indices: npt.NDArray[np.int64]        # vertices that get this weight in this group


def weight_batches(mesh: BodyMesh, joint_names: Sequence[str]) -> list[WeightBatch]:
    """Vertex-group assignments for ``mesh``: every (vertex, joint) influence with a weight that rounds
    above 0, in batches of equal rounded weight. Influences of the same joint on one vertex are summed."""
    V, K = mesh.weight_joints.shape
    dense_key = mesh.weight_joints.astype(np.int64) + len(joint_names) * np.arange(V)[:, None]   # (V, K)
    keys, inverse = np.unique(dense_key.ravel(), return_inverse=True)
    summed = np.bincount(inverse, weights=mesh.weights.ravel())                                   # per (v, j)
    q = np.round(summed / WEIGHT_STEP).astype(np.int64)                                          # quantised
    keep = q > 0
    keys, q = keys[keep], q[keep]
    vert, joint = keys // len(joint_names), keys % len(joint_names)
    out: list[WeightBatch] = []
    order = np.lexsort((vert, q, joint))
    vert, joint, q = vert[order], joint[order], q[order]
    cuts = np.flatnonzero((np.diff(joint) != 0) | (np.diff(q) != 0)) + 1
    for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(q)]):
        out.append(WeightBatch(joint_names[int(joint[s])], float(q[s] * WEIGHT_STEP), vert[s:e]))
    return out
