"""Render a posed body in a spec'd scene to H.264 mp4 and write its ground truth (imports bpy)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import bpy
import cv2
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from engine.skeleton import CONTACT_JOINTS, JOINT_NAMES

from . import scene as sc
from .body import PHENOTYPE_NAMES, PosedBody
from .cameras import intrinsics, world_to_opencv
from .spec import SceneSpec, camera_track

log = logging.getLogger(__name__)
GT_VERSION = 1


def _occluder_bvh(objs) -> BVHTree | None:
    if not objs:
        return None
    verts, polys = [], []
    for ob in objs:
        bpy.context.view_layer.update()
        M = np.array(ob.matrix_world)
        v = np.array([tuple(x.co) for x in ob.data.vertices])
        v = v @ M[:3, :3].T + M[:3, 3]
        base = len(verts)
        verts.extend(map(tuple, v))
        polys.extend([tuple(base + i for i in p.vertices) for p in ob.data.polygons])
    return BVHTree.FromPolygons(verts, polys)


def occlusion_flags(eye: np.ndarray, joints: np.ndarray, occ: BVHTree | None,
                    body_vertices: np.ndarray | None = None, faces: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per joint (24,): hidden by an occluder (ray camera -> joint hits one), and hidden by the body.

    Self-occlusion is approximate: the joint is inside the body, so the ray from the joint toward the
    camera first leaves its own limb; the joint counts as self-occluded if the ray then enters the
    body again before reaching the camera.
    """
    J = joints.shape[0]
    by_obj = np.zeros(J, bool)
    by_self = np.zeros(J, bool)
    if occ is not None:
        for j in range(J):
            d = joints[j] - eye
            dist = float(np.linalg.norm(d))
            hit = occ.ray_cast(Vector(eye), Vector(d / dist), dist)
            by_obj[j] = hit[0] is not None
    if body_vertices is not None:
        tree = BVHTree.FromPolygons(body_vertices.tolist(), faces.tolist(), all_triangles=True)
        for j in range(J):
            d = eye - joints[j]
            dist = float(np.linalg.norm(d))
            u = Vector(d / dist)
            hit = tree.ray_cast(Vector(joints[j]), u, dist)
            if hit[0] is None:
                continue
            start = hit[0] + u * 2e-3
            rest = dist - hit[3] - 2e-3
            by_self[j] = tree.ray_cast(start, u, rest)[0] is not None
    return by_obj, by_self


def _encoder(path: Path, spec: SceneSpec, crf: int):
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=Fraction(spec.fps).limit_denominator(1001))
    stream.width, stream.height = spec.width, spec.height
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": str(crf), "preset": "slow"}
    return container, stream


def render_clip(spec: SceneSpec, body: PosedBody, out_mp4: Path, out_npz: Path | None = None, *,
                seed: int = 0, crf: int = 23, png_dir: Path | None = None, self_occlusion: bool = True,
                frames: range | None = None, png_frames: set[int] | None = None) -> dict:
    """Render every frame of ``body`` into ``out_mp4`` (H.264, yuv420p) and write the GT ``out_npz``.

    Returns timings. ``png_dir`` keeps the rendered frames as PNGs (only ``png_frames`` if given).
    """
    assert spec.width % 2 == 0 and spec.height % 2 == 0, "H.264 yuv420p needs even dimensions"
    rng = np.random.default_rng(seed)
    frames = frames if frames is not None else range(body.n_frames)
    T = len(frames)
    pelvis = body.joints_world[list(frames), 0]
    cams = camera_track(spec.camera, pelvis, spec.fps, seed)                 # (T, 4, 4) Blender
    t0 = time.perf_counter()
    objs = sc.build(spec, rng, body.vertices[frames[0]], body.faces, body.vertex_part,
                    pelvis[:, :2].mean(0))
    occ = _occluder_bvh(objs["occluders"])
    t_build = time.perf_counter() - t0
    out_mp4 = Path(out_mp4)
    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    container, stream = _encoder(out_mp4, spec, crf)
    by_obj = np.zeros((T, len(JOINT_NAMES)), bool)
    by_self = np.zeros((T, len(JOINT_NAMES)), bool)
    t_render = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        frame_png = str(Path(tmp) / "frame.png")
        bpy.context.scene.render.filepath = frame_png
        for i, f in enumerate(frames):
            sc.set_body_vertices(objs["body"], body.vertices[f])
            sc.set_camera(objs["camera"], cams[i])
            t1 = time.perf_counter()
            bpy.ops.render.render(write_still=True)
            t_render += time.perf_counter() - t1
            bgr = cv2.imread(frame_png, cv2.IMREAD_COLOR)
            if png_dir is not None and (png_frames is None or i in png_frames):
                Path(png_dir).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(Path(png_dir) / f"{i:04d}.png"), bgr)
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
            by_obj[i], by_self[i] = occlusion_flags(
                cams[i, :3, 3], body.joints_world[f], occ,
                body.vertices[f] if self_occlusion else None, body.faces)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    # Read the camera back from Blender for the last frame: the stored convention is what rendered.
    mw_last = np.array(objs["camera"].matrix_world)
    assert np.allclose(mw_last, cams[-1], atol=1e-5), "camera matrix_world was not applied as given"
    if out_npz is not None:
        write_gt(out_npz, spec, body, frames, cams, by_obj, by_self, seed)
    return {"frames": T, "build_s": t_build, "render_s": t_render,
            "total_s": time.perf_counter() - t0, "render_per_frame_s": t_render / max(T, 1)}


def write_gt(path: Path, spec: SceneSpec, body: PosedBody, frames, cams: np.ndarray,
             by_obj: np.ndarray, by_self: np.ndarray, seed: int) -> None:
    """The ground-truth npz (loads with allow_pickle=False). Format: docs/synthetic_data.md."""
    idx = np.asarray(list(frames))
    K = intrinsics(spec.camera.focal_mm, spec.camera.sensor_width_mm, spec.width, spec.height)
    T_cw = world_to_opencv(cams)
    from .cameras import project
    uv, z = project(body.joints_world[idx], K, T_cw)
    in_view = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < spec.width) & (uv[..., 1] >= 0) & (uv[..., 1] < spec.height)
    np.savez_compressed(
        path,
        gt_version=np.int32(GT_VERSION),
        joints_world=body.joints_world[idx].astype(np.float32),
        joint_names=np.array(JOINT_NAMES),
        joints_2d=uv.astype(np.float32),
        fps=np.float64(spec.fps),
        times=(np.arange(len(idx)) / spec.fps).astype(np.float64),
        camera_intrinsics=K,
        camera_extrinsics=T_cw,
        camera_matrix_world_blender=cams,
        image_size=np.array([spec.width, spec.height], np.int32),
        occluded=by_obj,
        self_occluded=by_self,
        in_view=in_view,
        foot_contacts=body.foot_contacts[idx],
        contact_joint_names=np.array(CONTACT_JOINTS),
        phenotype_names=np.array(PHENOTYPE_NAMES),
        phenotype_values=np.array([body.phenotype[n] for n in PHENOTYPE_NAMES], np.float64),
        body_height_m=np.float64(body.height_m),
        camera_kind=np.array(spec.camera.kind),
        group=np.array(spec.group),
        motion_source=np.array(body.source),
        seed=np.int64(seed),
        spec_json=np.array(json.dumps(asdict(spec))),
    )
