"""Build a Blender scene from a ``SceneSpec`` (imports bpy; run with the venv python, headless).

The body is one mesh whose vertex coordinates are overwritten before each frame's render
(``set_body_vertices``). Textures are generated with numpy and packed into the scene, so Workbench
(colour type TEXTURE) and Cycles both show them.
"""

from __future__ import annotations

import math

import bmesh
import bpy
import numpy as np
from mathutils import Matrix

from .spec import Occluder, SceneSpec


def reset() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


# --- textures -----------------------------------------------------------------------------------

def _image(name: str, rgb: np.ndarray) -> bpy.types.Image:
    """A packed-in-memory image from an (H, W, 3) float array in [0, 1] (row 0 = bottom)."""
    h, w, _ = rgb.shape
    img = bpy.data.images.new(name, w, h, alpha=False)
    rgba = np.concatenate([np.clip(rgb, 0, 1), np.ones((h, w, 1))], axis=2).astype(np.float32)
    img.pixels.foreach_set(rgba.ravel())
    img.pack()
    return img


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Tileable smooth noise (size, size) in [0, 1] by bilinear upsampling of a random grid."""
    g = rng.random((cells, cells))
    g = np.concatenate([g, g[:1]], 0)
    g = np.concatenate([g, g[:, :1]], 1)
    x = np.linspace(0, cells, size, endpoint=False)
    i = x.astype(int)
    f = x - i
    f = f * f * (3 - 2 * f)
    a = g[i][:, i] * (1 - f)[None] + g[i][:, i + 1] * f[None]
    b = g[i + 1][:, i] * (1 - f)[None] + g[i + 1][:, i + 1] * f[None]
    return a * (1 - f)[:, None] + b * f[:, None]


def floor_texture(kind: str, a, b, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """One texture tile covering 2 x 2 floor tiles, (size, size, 3)."""
    a, b = np.asarray(a), np.asarray(b)
    y, x = np.mgrid[0:size, 0:size]
    noise = 0.6 * _value_noise(rng, size, 8) + 0.4 * _value_noise(rng, size, 32)
    if kind == "checker":
        m = ((x // (size // 2)) + (y // (size // 2))) % 2
        tex = np.where(m[..., None] == 1, a, b)
    elif kind == "tiles":                     # light tiles with dark grout lines
        grout = ((x % (size // 2)) < 4) | ((y % (size // 2)) < 4)
        tex = np.where(grout[..., None], b * 0.6, a)
    else:                                     # blotchy concrete / grass-like noise
        tex = a[None, None] * (1 - noise[..., None]) + b[None, None] * noise[..., None]
    return np.clip(tex * (0.85 + 0.3 * noise[..., None]), 0, 1)


def wall_texture(rgb, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    base = np.asarray(rgb)
    y, x = np.mgrid[0:size, 0:size]
    kind = int(rng.integers(3))
    noise = 0.7 * _value_noise(rng, size, 4) + 0.3 * _value_noise(rng, size, 12)
    if kind == 0:                             # vertical stripes / panels
        m = (x // (size // 8)) % 2
        tex = base * (0.8 + 0.25 * m[..., None])
    elif kind == 1:                           # bricks
        row = y // (size // 16)
        m = (((x + (row % 2) * (size // 16)) % (size // 8)) < 3) | ((y % (size // 16)) < 2)
        tex = np.where(m[..., None], base * 0.5, base)
    else:                                     # plaster with large blotches
        tex = base * (0.75 + 0.4 * noise[..., None])
    return tex * (0.9 + 0.2 * noise[..., None])


# --- materials and objects ----------------------------------------------------------------------

def _material(name: str, rgb, image: bpy.types.Image | None = None, roughness: float = 0.7) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    mat.diffuse_color = (*rgb, 1.0)           # Workbench MATERIAL colour, and fallback in TEXTURE mode
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    if image is not None:
        tex = nt.nodes.new("ShaderNodeTexImage")
        tex.image = image
        nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        nt.nodes.active = tex                 # Workbench shows the active image texture node
    return mat


def _mesh_object(name: str, verts, faces, uvs=None) -> bpy.types.Object:
    me = bpy.data.meshes.new(name)
    me.from_pydata([tuple(v) for v in verts], [], [tuple(f) for f in faces])
    if uvs is not None:
        layer = me.uv_layers.new(name="UVMap")
        loop_vi = np.zeros(len(me.loops), np.int32)
        me.loops.foreach_get("vertex_index", loop_vi)
        layer.data.foreach_set("uv", np.asarray(uvs, np.float32)[loop_vi].ravel())
    me.update()
    ob = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(ob)
    return ob


def add_floor(spec: SceneSpec, rng: np.random.Generator, half: float = 40.0) -> bpy.types.Object:
    v = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]], float)
    uv = v[:, :2] / (2 * spec.floor_tile_m)
    ob = _mesh_object("Floor", v, [(0, 1, 2, 3)], uv)
    img = _image("floor_tex", floor_texture(spec.floor_kind, spec.floor_rgb_a, spec.floor_rgb_b, rng))
    ob.data.materials.append(_material("Floor", spec.floor_rgb_a, img, roughness=0.9))
    return ob


def add_walls(spec: SceneSpec, rng: np.random.Generator, centre_xy) -> None:
    """Four textured walls around ``centre_xy`` (a room), 5 m high."""
    d, h = spec.wall_distance_m, 5.0
    cx, cy = centre_xy
    img = _image("wall_tex", wall_texture(spec.wall_rgb, rng))
    mat = _material("Wall", spec.wall_rgb, img)
    reps = 2 * d / 2.5                         # texture repeats every 2.5 m
    for k in range(4):
        a = k * math.pi / 2
        c, s = math.cos(a), math.sin(a)
        # wall k spans x in [-d, d] at y = d, rotated by a about the room centre
        pts = np.array([[-d, d, 0], [d, d, 0], [d, d, h], [-d, d, h]])
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        pts = pts @ R.T + np.array([cx, cy, 0])
        uv = np.array([[0, 0], [reps, 0], [reps, h / 2.5], [0, h / 2.5]])
        ob = _mesh_object(f"Wall{k}", pts, [(0, 1, 2, 3)], uv)
        ob.data.materials.append(mat)


def add_occluder(occ: Occluder, index: int) -> bpy.types.Object:
    me = bpy.data.meshes.new(f"Occluder{index}")
    bm = bmesh.new()
    if occ.kind == "pillar":
        bmesh.ops.create_cone(bm, cap_ends=True, segments=24, radius1=0.5, radius2=0.5, depth=1.0)
    else:
        bmesh.ops.create_cube(bm, size=1.0)
    bm.to_mesh(me)
    bm.free()
    ob = bpy.data.objects.new(f"Occluder{index}", me)
    bpy.context.scene.collection.objects.link(ob)
    ob.location = occ.center
    ob.rotation_euler = (0.0, 0.0, math.radians(occ.rot_z_deg))
    ob.scale = occ.size
    ob.data.materials.append(_material(f"Occluder{index}", occ.rgb))
    return ob


def add_body(spec: SceneSpec, vertices0: np.ndarray, faces: np.ndarray, parts: np.ndarray) -> bpy.types.Object:
    ob = _mesh_object("Body", vertices0, faces)
    me = ob.data
    for name, rgb in (("Skin", spec.skin_rgb), ("Top", spec.top_rgb), ("Bottom", spec.bottom_rgb)):
        me.materials.append(_material(name, rgb, roughness=0.6))
    if parts.size:
        face_part = np.round(np.median(parts[faces], axis=1)).astype(np.int32)   # (F,)
        me.polygons.foreach_set("material_index", face_part)
    me.polygons.foreach_set("use_smooth", np.ones(len(me.polygons), bool))
    me.update()
    return ob


def set_body_vertices(ob: bpy.types.Object, vertices: np.ndarray) -> None:
    ob.data.vertices.foreach_set("co", np.ascontiguousarray(vertices, np.float32).ravel())
    ob.data.update()


def add_camera(spec: SceneSpec) -> bpy.types.Object:
    cam = bpy.data.cameras.new("Camera")
    cam.lens = spec.camera.focal_mm
    cam.sensor_fit = "HORIZONTAL"
    cam.sensor_width = spec.camera.sensor_width_mm
    cam.shift_x = cam.shift_y = 0.0
    cam.clip_start, cam.clip_end = 0.05, 200.0
    ob = bpy.data.objects.new("Camera", cam)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.scene.camera = ob
    return ob


def set_camera(ob: bpy.types.Object, matrix_world: np.ndarray) -> None:
    ob.matrix_world = Matrix(np.asarray(matrix_world).tolist())


def setup_render(spec: SceneSpec) -> None:
    scene = bpy.context.scene
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = spec.width, spec.height, 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    r.fps = int(round(spec.fps))
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("World")
    scene.world = world
    world.color = spec.world_rgb
    if spec.engine == "WORKBENCH":
        r.engine = "BLENDER_WORKBENCH"
        sh = scene.display.shading
        sh.light = "STUDIO"
        sh.studio_light = spec.studio_light
        sh.use_world_space_lighting = spec.light_rotate_deg != 0.0
        sh.studiolight_rotate_z = math.radians(spec.light_rotate_deg)
        sh.color_type = "TEXTURE"
        sh.show_shadows = spec.shadows
        sh.shadow_intensity = spec.shadow_intensity
        sh.show_cavity = False
        scene.display.light_direction = spec.light_direction
        scene.display.render_aa = "5"
    else:
        r.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = spec.cycles_samples
        scene.cycles.use_denoising = True
        world.use_nodes = True
        bg = world.node_tree.nodes["Background"]
        bg.inputs["Color"].default_value = (*spec.world_rgb, 1.0)
        bg.inputs["Strength"].default_value = 0.6
        sun = bpy.data.lights.new("Sun", "SUN")
        sun.energy = 3.0
        sun.angle = math.radians(5)
        ob = bpy.data.objects.new("Sun", sun)
        d = np.asarray(spec.light_direction, float)
        ob.rotation_euler = (math.acos(d[2] / np.linalg.norm(d)), 0.0, math.atan2(d[0], -d[1]))
        scene.collection.objects.link(ob)


def build(spec: SceneSpec, rng: np.random.Generator, vertices0: np.ndarray, faces: np.ndarray,
          parts: np.ndarray, centre_xy) -> dict:
    """A fresh scene. Returns the objects the renderer updates per frame."""
    reset()
    setup_render(spec)
    add_floor(spec, rng)
    if spec.background == "walls":
        add_walls(spec, rng, centre_xy)
    occluders = [add_occluder(o, i) for i, o in enumerate(spec.occluders)]
    body = add_body(spec, vertices0, faces, parts)
    cam = add_camera(spec)
    return {"body": body, "camera": cam, "occluders": occluders}
