"""Issue #8 in Blender (bpy module, fake engine): the import is all-or-nothing, the user's mode comes
back, hostile results are refused with the scene untouched, paths are absolute, and the batch command
gives unique names, never leaves partial files and stops an engine that hangs."""

from __future__ import annotations

import errno
import importlib
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import MODULE

import bpy  # noqa: E402  (conftest set HOME first)

import fake_engine  # noqa: E402
import hostile  # noqa: E402


def _mod(name: str):
    return importlib.import_module(f"{MODULE}.addon.{name}")


def _video(folder: Path, name: str = "walk.mp4") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(b"\x00" * 64)
    return str(p)


def _state() -> dict:
    """Everything an import may touch and a failed one must leave exactly as it was."""
    scene, vl = bpy.context.scene, bpy.context.view_layer
    active = vl.objects.active
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "armatures": sorted(a.name for a in bpy.data.armatures),
        "meshes": sorted(m.name for m in bpy.data.meshes),
        "actions": sorted((a.name, a.users, a.use_fake_user) for a in bpy.data.actions),
        "selected": sorted(o.name for o in vl.objects if o.select_get()),
        "active": active.name if active else None,
        "mode": active.mode if active else None,
        "scene": (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end,
                  scene.frame_current),
        "anim": {o.name: (o.animation_data.action.name if o.animation_data and o.animation_data.action else None)
                 for o in bpy.data.objects},
        "rot_modes": {o.name: [pb.rotation_mode for pb in o.pose.bones] for o in bpy.data.objects
                      if o.type == 'ARMATURE'},
    }


@pytest.fixture()
def user_scene(blank, tmp_path):
    """A user's scene: odd fps and range, an earlier Video Mocap armature with the user's own action
    and Euler bones, two selected objects, and a cube being edited (Edit Mode)."""
    scene = blank.scene
    scene.render.fps, scene.render.fps_base = 25, 1.0
    scene.frame_start, scene.frame_end, scene.frame_current = 10, 99, 42
    assert bpy.ops.import_anim.video_mocap('EXEC_DEFAULT', filepath=_video(tmp_path, "earlier.mp4")) == {'FINISHED'}
    arm = bpy.data.objects["earlier"]
    mine = bpy.data.actions.new("mine")
    arm.animation_data.action = mine
    for pb in arm.pose.bones[:3]:
        pb.rotation_mode = 'XYZ'
    scene.render.fps, scene.frame_start, scene.frame_end, scene.frame_current = 25, 10, 99, 42
    bpy.ops.object.empty_add()
    empty = bpy.context.object
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.object
    empty.select_set(True)
    cube.select_set(True)
    arm.select_set(False)
    bpy.context.view_layer.objects.active = cube
    bpy.ops.object.mode_set(mode='EDIT')
    assert cube.mode == 'EDIT'
    return blank


def _import(video: str, **kw) -> set[str]:
    return bpy.ops.import_anim.video_mocap('EXEC_DEFAULT', filepath=video, **kw)


@pytest.mark.parametrize("name", ["nan_times", "huge_times", "long_joint_name", "zero_quaternions",
                                  "decreasing_times", "doubled_quaternions", "nan_fps", "string_rotations"])
def test_hostile_result_leaves_user_scene_exactly(user_scene, tmp_path, monkeypatch, name):
    valid = fake_engine.make_result(tmp_path / "valid.npz", frames=12, seed=2)
    bad = hostile.write_raw(tmp_path / "bad.npz", hostile.REFUSED[name]({k: np.asarray(v) for k, v in
                                                                        hostile.load(tmp_path / "valid.npz").items()}))
    assert valid
    monkeypatch.setenv("FAKE_ENGINE_RESULT", str(bad))
    before = _state()
    with pytest.raises(RuntimeError):
        _import(_video(tmp_path))
    assert _state() == before
    assert not bpy.context.window_manager.vidmocap_job.last_ok


def test_member_declaring_64_gib_is_refused_in_blender(user_scene, tmp_path, monkeypatch):
    fake_engine.make_result(tmp_path / "valid.npz", frames=12, seed=2)
    bad = hostile.with_member_header(tmp_path / "bad.npz", hostile.load(tmp_path / "valid.npz"),
                                     "rotations", (1 << 33, 24, 4))
    monkeypatch.setenv("FAKE_ENGINE_RESULT", str(bad))
    before = _state()
    with pytest.raises(RuntimeError, match="rotations"):
        _import(_video(tmp_path))
    assert _state() == before


def test_near_unit_quaternions_import_normalised(blank, tmp_path, monkeypatch):
    fake_engine.make_result(tmp_path / "valid.npz", frames=12, seed=2)
    ok = hostile.write_raw(tmp_path / "ok.npz", hostile.ACCEPTED["near_unit_quaternions"](hostile.load(tmp_path / "valid.npz")))
    monkeypatch.setenv("FAKE_ENGINE_RESULT", str(ok))
    assert _import(_video(tmp_path)) == {'FINISHED'}
    obj = bpy.data.objects["walk"]
    for f in (1, 6, 12):
        blank.scene.frame_set(f)
        for pb in obj.pose.bones:
            q = np.array(pb.rotation_quaternion)
            assert np.isfinite(q).all() and abs(np.linalg.norm(q) - 1) < 1e-4


@pytest.mark.parametrize("where", ["keys", "after_apply", "build"])
def test_failure_anywhere_rolls_everything_back(user_scene, tmp_path, monkeypatch, where):
    """An unexpected error while writing keys, or after the whole import (scene fps set, old action
    given a fake user), or while building the armature in Edit Mode: the scene is exactly as before."""
    apply = _mod("blender.apply")
    if where == "keys":
        calls = []
        real = apply._write_keys

        def write_keys(*a, **k):
            calls.append(1)
            if len(calls) > 30:
                raise RuntimeError("disk on fire")
            return real(*a, **k)
        monkeypatch.setattr(apply, "_write_keys", write_keys)
        target = ""
    elif where == "after_apply":
        real_apply = apply.apply_result

        def late(*a, **k):
            real_apply(*a, **k)
            raise RuntimeError("late failure")
        monkeypatch.setattr(apply, "apply_result", late)
        target = "earlier"          # re-import onto the user's armature: its action is replaced first
    else:
        class Boom:                 # the 6th bone's head fails while the armature is in Edit Mode
            def __init__(self, a):
                self.a = a

            def __getitem__(self, j):
                if j == 5:
                    assert bpy.context.object.mode == 'EDIT'
                    raise RuntimeError("edit failed")
                return self.a[j]
        real_layout = apply.rig.bone_layout

        def layout(*a, **k):
            lay = real_layout(*a, **k)
            return type(lay)(lay.names, lay.parents, Boom(lay.heads), lay.tails, lay.z_axes)
        monkeypatch.setattr(apply.rig, "bone_layout", layout)
        target = ""
    before = _state()
    with pytest.raises(RuntimeError, match="Import failed|Video Mocap"):
        _import(_video(tmp_path), target=target)
    assert _state() == before
    assert bpy.data.objects["earlier"].animation_data.action.name == "mine"
    assert not bpy.data.actions["mine"].use_fake_user


def test_success_returns_to_edit_mode(user_scene, tmp_path):
    assert _import(_video(tmp_path)) == {'FINISHED'}
    cube = bpy.data.objects["Cube"]
    assert bpy.context.view_layer.objects.active == cube and cube.mode == 'EDIT'
    assert "walk" in bpy.data.objects and bpy.data.objects["walk"].animation_data.action.name == "walk"


def test_relative_video_path_reaches_the_engine_absolute(blank, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_CHECK_VIDEO", "1")
    _video(tmp_path / "clips", "rel.mp4")
    monkeypatch.chdir(tmp_path / "clips")
    assert _import("rel.mp4") == {'FINISHED'}      # the engine runs in the extension's folder
    assert "rel" in bpy.data.objects


# -- batch ----------------------------------------------------------------------------------------------
def test_batch_same_named_inputs_get_unique_outputs(blank, tmp_path, monkeypatch, capsys):
    cli = _mod("blender.cli")
    a = _video(tmp_path / "a")
    b = _video(tmp_path / "b")
    monkeypatch.setenv("FAKE_ENGINE_SEED", "0")
    out = tmp_path / "o"
    assert cli.convert([a, b, "--out", str(out), "--format", "bvh", "--keep-result"]) == 0
    text = capsys.readouterr().out
    assert text.count("OK ") == 2
    assert sorted(p.name for p in out.iterdir()) == ["walk.bvh", "walk.npz", "walk_2.bvh", "walk_2.npz"]
    assert cli.output_stems(["a/walk.mp4", "b/walk.mp4", "walk_2.mov", "c/Walk.mkv"]) == \
        ["walk", "walk_3", "walk_2", "Walk_4"]


def test_batch_relative_paths_from_another_folder(blank, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ENGINE_CHECK_VIDEO", "1")
    cli = _mod("blender.cli")
    work = tmp_path / "elsewhere"
    _video(work, "clip.mp4")
    monkeypatch.chdir(work)
    assert cli.convert(["clip.mp4", "--out", "o", "--format", "bvh"]) == 0, capsys.readouterr().out
    assert (work / "o" / "clip.bvh").is_file()


def test_batch_full_disk_leaves_no_partial_files(blank, tmp_path, monkeypatch, capsys):
    cli = _mod("blender.cli")
    session = _mod("blender.session")
    out = tmp_path / "o"
    video = _video(tmp_path / "v")

    real_copy = session.shutil.copyfile

    def full_copy(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:100])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(session.shutil, "copyfile", full_copy)
    assert cli.convert([video, "--out", str(out), "--format", "bvh", "--keep-result"]) == 1
    assert "No space left" in capsys.readouterr().out
    assert list(out.iterdir()) == []
    monkeypatch.setattr(session.shutil, "copyfile", real_copy)
    # an exporter that fails half-way: an earlier good output survives, no partial file appears
    assert cli.convert([video, "--out", str(out), "--format", "bvh"]) == 0
    good = (out / "walk.bvh").read_bytes()
    export = _mod("blender.export")   # the one export code, shared by the batch command and the panel
    real_export = export.export_armature

    def half_export(obj, path, fmt):
        real_export(obj, path, fmt)
        with open(path, "r+b") as fh:
            fh.truncate(50)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(export, "export_armature", half_export)
    assert cli.convert([video, "--out", str(out), "--format", "bvh"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["walk.bvh"] and (out / "walk.bvh").read_bytes() == good


def test_batch_stops_an_engine_that_hangs(blank, tmp_path, monkeypatch, capsys):
    """The fake engine says ``start`` and then nothing, ignoring cancel and SIGTERM: --stall-timeout
    stops it (cancel, SIGTERM, then SIGKILL) and batch moves on."""
    cli = _mod("blender.cli")
    engine = _mod("core.engine")
    monkeypatch.setattr(engine, "CANCEL_GRACE_S", 0.5)
    monkeypatch.setattr(engine, "KILL_AFTER_S", 0.5)
    monkeypatch.setenv("FAKE_ENGINE_MODE", "hang")
    t = time.monotonic()
    assert cli.convert([_video(tmp_path / "v"), "--out", str(tmp_path / "o"), "--stall-timeout", "1"]) == 1
    assert time.monotonic() - t < 20
    out = capsys.readouterr().out
    assert "FAILED" in out and "no progress for 1 s" in out
    assert cli.convert([_video(tmp_path / "v"), "--out", str(tmp_path / "o"), "--stall-timeout", "nan"]) == 2


def test_fuzz_imports_are_all_or_nothing(user_scene, tmp_path):
    """Seeded fuzz through the add-on's import (read + transaction + apply, without the engine):
    every mutated file is either refused with the scene exactly as before, or imported completely
    (an animated armature with finite keys); never an exception, never a half-import."""
    session_mod = _mod("blender.session")
    engine_mod = _mod("core.engine")
    fake_engine.make_result(tmp_path / "valid.npz", frames=10, seed=5)
    valid = hostile.load(tmp_path / "valid.npz")
    raw = (tmp_path / "valid.npz").read_bytes()
    rng = np.random.default_rng(1203)
    counts = {"refused": 0, "imported": 0}
    for i in range(60):
        path = tmp_path / "m.npz"
        if i % 3 == 0:
            path.write_bytes(hostile.fuzz_bytes(raw, rng))
        else:
            arrays = valid
            for _ in range(int(rng.integers(1, 3))):
                arrays = hostile.fuzz_arrays(arrays, rng)
            hostile.write_raw(path, arrays)
        s = session_mod.ImportSession(session_mod.ImportRequest(video=f"fuzz{i}.mp4", options=engine_mod.RunOptions()))
        before = _state()
        ok, msg = s.apply_file(bpy.context, str(path))
        assert msg
        if not ok:
            assert _state() == before, (i, msg)
            counts["refused"] += 1
            continue
        counts["imported"] += 1
        obj = bpy.data.objects[s.obj_name]
        assert obj.type == 'ARMATURE' and obj.animation_data.action.name.startswith(f"fuzz{i}")
        assert bpy.data.objects["Cube"].mode == 'EDIT'     # the user's mode came back
        fc_values = [k.co[1] for fc in _fcurves(obj.animation_data.action) for k in fc.keyframe_points]
        assert len(fc_values) and np.all(np.isfinite(fc_values))
    print(f"import fuzz: {counts}")
    assert counts["refused"] >= 10 and counts["imported"] >= 5


def _fcurves(action):
    if hasattr(action, "layers"):
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    yield from bag.fcurves
    else:
        yield from action.fcurves
