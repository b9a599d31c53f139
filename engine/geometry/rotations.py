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
    """Flip signs along ``dim`` (time) so that consecutive quaternions have a non-negative dot product.

    Each frame's sign is the previous frame's sign times the sign of the raw dot product, so a cumulative
    product along time gives all signs at once.
    """
    q = q.movedim(dim, 0)
    dots = (q[1:] * q[:-1]).sum(-1, keepdim=True)
    step = torch.where(dots < 0, -1.0, 1.0).to(q.dtype)
    # the first frame keeps its sign (a one-frame clip: ``step`` is empty and only this remains)
    signs = torch.cat([torch.ones_like(q[:1, ..., :1]), torch.cumprod(step, 0)], 0)
    return (q * signs).movedim(0, dim)


def align_vectors(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Rotation R (..., 3, 3) minimising sum_i w_i |R x_i - y_i|^2 for vectors x, y (..., N, 3)."""
    return roma.rigid_vectors_registration(x, y, weights=weights)


def shortest_arc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) smallest rotations taking unit directions a to b (..., 3); anti-parallel pairs turn
    about an axis orthogonal to a."""
    axis = torch.cross(a, b, dim=-1)
    s = axis.norm(dim=-1, keepdim=True)
    c = (a * b).sum(-1, keepdim=True)
    angle = torch.atan2(s, c)
    ref = torch.tensor([0.0, 0.0, 1.0], dtype=a.dtype, device=a.device).expand_as(a) + 1e-3
    fallback = torch.cross(a, ref, dim=-1)
    fallback = fallback / fallback.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis = torch.where(s > 1e-6, axis / s.clamp_min(1e-12), fallback)
    return rotvec_to_matrix(axis * angle)


def rot6d_cols_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): the 6D representation is the matrix's first two COLUMNS, concatenated
    ``[c1 (3), c2 (3)]``; Gram-Schmidt (roma.special_gramschmidt) makes a proper rotation."""
    return roma.special_gramschmidt(x.reshape(*x.shape[:-1], 2, 3).transpose(-1, -2))


def matrix_to_rot6d_cols(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6), inverse of ``rot6d_cols_to_matrix`` for rotations."""
    return R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)


rotmat_geodesic_distance = roma.rotmat_geodesic_distance  # (..., 3, 3) x2 -> (...,) radians
