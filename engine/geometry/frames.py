"""Axis conventions: every change of frame in the project is one of these (docs/conventions.md).

Frames:
- **BlazePose world** (mediapipe ``pose_world_landmarks``): metres, origin at the hip midpoint,
  x image-right, y down, z away from the camera. The same axes as the OpenCV camera.
- **OpenCV camera** ("cv"): x right, y down, z forward (the viewing direction).
- **Body-camera** ("bc"): the camera's axes turned Blender-like: x right, y away from the camera, z up.
  A person facing the camera with an identity root rotation is in the rest pose (facing -Y).
- **World** (result files, Blender): Z up, metres, the floor at z = 0.
- **Blender camera** (``Object.matrix_world`` of a camera): x right, y up, looking along -z.
- **Mocap Y-up** (BVH, ASF/AMC): Y up, facing +Z, left at +X.

Each matrix ``A_TO_B`` maps column vectors: ``p_B = A_TO_B @ p_A``; for row-vector arrays of points
use :func:`apply` (``p @ M.T``).
"""

from __future__ import annotations

import numpy as np

# BlazePose world / OpenCV camera (x right, y down, z away) -> body-camera (x right, y away, z up)
CV_TO_BC = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# body-camera -> OpenCV camera (the inverse: a rotation, so the transpose)
BC_TO_CV = CV_TO_BC.T.copy()
# Blender camera-local axes -> OpenCV camera axes (flip y and z), as a 4x4 for camera matrices
BLENDER_CAM_TO_CV_4 = np.diag([1.0, -1.0, -1.0, 1.0])
# Mocap Y-up (facing +Z, left +X) -> our Z-up (facing -Y, left +X): +90 degrees about X
YUP_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def apply(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 frame change to points stored as rows (..., 3)."""
    return points @ M.T


def blazepose_to_bc(points: np.ndarray) -> np.ndarray:
    """BlazePose world landmarks (..., 3) -> body-camera frame; same dtype (no copy of the matrix maths)."""
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)
