"""Issue #8: the add-on's result reader (addon/core/result.py) against hostile files, without Blender.

Every refused file gives a ResultError (a message for the user), never another exception, and
reading never costs more memory than the fields the add-on uses."""

from __future__ import annotations

import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fake_engine
import hostile
from addon.core.result import MAX_NAME_BYTES, MotionResult, ResultError, read_result


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, np.ndarray]:
    path = tmp_path_factory.mktemp("valid") / "r.npz"
    fake_engine.make_result(path, frames=12, seed=4)
    return hostile.load(path)


def _check_invariants(r: MotionResult) -> None:
    T, J = r.rotations.shape[:2]
    assert T >= 1 and J == len(r.joint_names) == len(r.parents)
    assert np.allclose(np.linalg.norm(r.rotations, axis=-1), 1.0, atol=1e-9)
    for a in (r.rotations, r.root_translation, r.rest_offsets, r.joints_world, r.times):
        assert np.all(np.isfinite(a))
    assert np.all(np.diff(r.times) > 0) and np.isfinite(r.fps) and r.fps > 0
    assert all(0 < len(n.encode()) <= MAX_NAME_BYTES for n in r.joint_names)


@pytest.mark.parametrize("name", sorted(hostile.REFUSED))
def test_hostile_result_is_refused(tmp_path, valid, name):
    path = hostile.write_raw(tmp_path / "r.npz", hostile.REFUSED[name](valid))
    with pytest.raises(ResultError) as e:
        read_result(path)
    assert str(e.value) and "Traceback" not in str(e.value)


@pytest.mark.parametrize("name", sorted(hostile.ACCEPTED))
def test_near_valid_result_is_read_and_normalised(tmp_path, valid, name):
    path = hostile.write_raw(tmp_path / "r.npz", hostile.ACCEPTED[name](valid))
    _check_invariants(read_result(path))


def test_member_declaring_64_gib_is_refused_without_allocating(tmp_path, valid):
    path = hostile.with_member_header(tmp_path / "r.npz", valid, "rotations", (1 << 33, 24, 4))
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(ResultError, match="rotations"):
        read_result(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20e6 and time.perf_counter() - t < 2


def test_header_larger_than_member_is_refused(tmp_path, valid):
    # a small declared shape (fits the limits) that the member's size contradicts: refused before reading
    path = hostile.with_member_header(tmp_path / "r.npz", valid, "times", (5000,))
    with pytest.raises(ResultError, match="damaged"):
        read_result(path)


def test_unknown_member_is_never_read(tmp_path, valid, monkeypatch):
    """A 256 MB junk member (stored compressed: zeros) costs neither time nor memory."""
    path = hostile.write_raw(tmp_path / "r.npz", valid)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("junk.npy", "w", force_zip64=True) as fh:
            block = bytes(1 << 22)
            for _ in range(64):
                fh.write(block)
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *a, **k):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    tracemalloc.start()
    r = read_result(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    _check_invariants(r)
    assert "junk.npy" not in opened and peak < 20e6


def test_lying_zip_directory_is_refused(tmp_path, valid):
    raw = hostile.write_raw(tmp_path / "r.npz", valid).read_bytes()
    (tmp_path / "lie.npz").write_bytes(hostile.patch_zip_sizes(raw, 1000))
    with pytest.raises(ResultError):
        read_result(tmp_path / "lie.npz")


def test_fuzz_results(tmp_path, valid):
    """Seeded fuzz: array-level and byte-level mutations. Each gives a ResultError or a result that
    satisfies every invariant the add-on relies on; nothing else (no other exception, no hang)."""
    rng = np.random.default_rng(20261203)
    raw = hostile.write_raw(tmp_path / "base.npz", valid).read_bytes()
    counts = {"refused": 0, "accepted": 0}
    t = time.perf_counter()
    for i in range(400):
        path = tmp_path / f"f{i % 4}.npz"
        if i % 2:
            path.write_bytes(hostile.fuzz_bytes(raw, rng))
        else:
            arrays = valid
            for _ in range(int(rng.integers(1, 4))):
                arrays = hostile.fuzz_arrays(arrays, rng)
            hostile.write_raw(path, arrays)
        try:
            r = read_result(path)
        except ResultError as e:
            assert str(e)
            counts["refused"] += 1
            continue
        _check_invariants(r)
        counts["accepted"] += 1
    print(f"result fuzz: {counts} in {time.perf_counter() - t:.1f} s")
    assert counts["refused"] > 100 and counts["accepted"] > 10


def test_engine_killed_by_a_signal_is_reported(tmp_path):
    """An engine that dies from a signal before saying anything (e.g. SIGTERM during the interpreter's
    own start-up) is an error the add-on reports, naming the signal."""
    import sys

    from addon.core.engine import EngineJob

    job = EngineJob([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
                    cwd=tmp_path, env={})
    job.start()
    assert job.wait(30)
    out = job.outcome()
    assert not out.ok and not out.cancelled and "killed by SIGTERM" in out.message
