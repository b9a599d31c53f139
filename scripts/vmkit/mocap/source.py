"""A source skeleton and its motion, as read from a BVH or ASF/AMC file (the loaders' common output).

Conventions (those of BVH): each joint has an offset from its parent in the parent's frame; in the rest
pose every joint frame is aligned with the file's world axes, so the offsets are also the rest-pose bone
vectors in world axes. A joint's local rotation ``L`` acts in its parent's frame:

    W[j] = W[parent[j]] @ L[j]          p[j] = p[parent[j]] + W[parent[j]] @ offset[j]

Units and axes are the file's own (BVH/ASF: Y up). ``retarget.py`` converts to metres and Z up.
End sites are kept as extra leaf "joints" named ``<parent>_end`` with identity rotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SourceClip:
    names: list[str]                 # joint names (end sites: "<parent>_end")
    parents: np.ndarray              # (N,) int, -1 for the root; parents come first
    offsets: np.ndarray              # (N, 3) rest offsets from the parent, file units
    rotations: np.ndarray            # (T, N, 3, 3) local rotation matrices
    root_translation: np.ndarray     # (T, 3) root position, file units
    fps: float
    path: str = ""
    has_data: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (N,) joint has channels

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    def index(self, name: str) -> int:
        return self.names.index(name)

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (T, N, 3, 3) and positions (T, N, 3) in file units and axes."""
        T, N = self.rotations.shape[:2]
        W = np.empty_like(self.rotations)
        P = np.empty((T, N, 3), dtype=np.float64)
        for j, p in enumerate(self.parents):
            if p < 0:
                W[:, j] = self.rotations[:, j]
                P[:, j] = self.root_translation + self.offsets[j]
            else:
                W[:, j] = W[:, p] @ self.rotations[:, j]
                P[:, j] = P[:, p] + W[:, p] @ self.offsets[j]
        return W, P

    def rest_positions(self) -> np.ndarray:
        """Joint positions (N, 3) of the rest pose (all rotations identity, root at its offset)."""
        P = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            P[j] = self.offsets[j] if p < 0 else P[p] + self.offsets[j]
        return P

    def slice(self, start: int, stop: int | None = None) -> "SourceClip":
        return SourceClip(self.names, self.parents, self.offsets, self.rotations[start:stop],
                          self.root_translation[start:stop], self.fps, self.path, self.has_data)
