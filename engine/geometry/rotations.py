"""Rotation helpers backed by roma, named by convention (see STYLE.md #21).

Quaternions in the result file are wxyz (scalar first, Blender's order); roma uses xyzw.
"""

from __future__ import annotations

import roma
import torch

rotvec_to_matrix = roma.rotvec_to_rotmat
matrix_to_rotvec = roma.rotmat_to_rotvec


def matrix_to_quat_wxyz(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) unit quaternion, scalar first."""
    return roma.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(R))


def quat_wxyz_to_matrix(q: torch.Tensor) -> torch.Tensor:
    return roma.unitquat_to_rotmat(roma.quat_wxyz_to_xyzw(q))


def quat_continuity(q: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Flip signs along ``dim`` (time) so that consecutive quaternions have a non-negative dot product."""
    q = q.movedim(dim, 0).clone()
    for t in range(1, q.shape[0]):
        flip = (q[t] * q[t - 1]).sum(-1, keepdim=True) < 0
        q[t] = torch.where(flip, -q[t], q[t])
    return q.movedim(0, dim)


def align_vectors(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Rotation R (..., 3, 3) minimising sum_i w_i |R x_i - y_i|^2 for vectors x, y (..., N, 3)."""
    return roma.rigid_vectors_registration(x, y, weights=weights)
