"""Camera conventions, named once (pure numpy; no bpy).

- World: metres, Z up (Blender and the engine).
- Blender camera object: looks down its local -Z, +Y is image-up, +X image-right.
- OpenCV camera (what the ground truth stores): x right, y down, z forward. So
  ``T_cv_from_world = diag(1, -1, -1, 1) @ inverse(camera.matrix_world)``.
- Intrinsics in pixels, principal point at the image centre (no lens shift), square pixels,
  sensor fit HORIZONTAL: ``fx = fy = focal_mm / sensor_width_mm * width``.
"""

from __future__ import annotations

import numpy as np

from engine.geometry import frames

BLENDER_TO_OPENCV_CAM = frames.BLENDER_CAM_TO_CV_4  # flips camera-local y and z


def intrinsics(focal_mm: float, sensor_width_mm: float, width: int, height: int) -> np.ndarray:
    """(3, 3) OpenCV K for a Blender camera with sensor_fit='HORIZONTAL' and no shift."""
    f = focal_mm / sensor_width_mm * width
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def world_to_opencv(cam_matrix_world: np.ndarray) -> np.ndarray:
    """(..., 4, 4) Blender camera matrix_world -> (..., 4, 4) world-to-camera in OpenCV axes."""
    return BLENDER_TO_OPENCV_CAM @ np.linalg.inv(cam_matrix_world)


def project(points_world: np.ndarray, K: np.ndarray, T_cw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (..., N, 3) world points with K (3, 3) and world-to-camera T_cw (..., 4, 4).

    Returns pixel coordinates (..., N, 2) and camera depth z (..., N).
    """
    R = T_cw[..., :3, :3]
    t = T_cw[..., :3, 3]
    pc = np.einsum("...ij,...nj->...ni", R, points_world) + t[..., None, :]  # (..., N, 3)
    z = pc[..., 2]
    uv = np.einsum("ij,...nj->...ni", K, pc)
    return uv[..., :2] / uv[..., 2:3], z


def look_at(eye: np.ndarray, target: np.ndarray, roll_rad: float = 0.0) -> np.ndarray:
    """(4, 4) Blender camera matrix_world at ``eye`` looking at ``target`` with world Z up.

    Blender camera axes: -Z toward the target, +Y up in the image. ``roll_rad`` rolls about the
    viewing axis (positive = counter-clockwise as seen in the image).
    """
    eye = np.asarray(eye, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-8:  # looking straight down or up
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    c, s = np.cos(roll_rad), np.sin(roll_rad)
    right, up = c * right + s * up, -s * right + c * up
    M = np.eye(4)
    M[:3, 0] = right
    M[:3, 1] = up
    M[:3, 2] = -fwd
    M[:3, 3] = eye
    return M
