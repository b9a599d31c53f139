"""Issue #8 leftovers: a result write killed with SIGKILL leaves its ``.vm-XXXXXXXX.tmp`` behind; the next
run removes it (only its own pattern, only files older than the run, never a live writer's: the writer
holds an flock on its temp, which the kernel drops when the process dies). And SIGTERM in the first
~50 ms of a run, before the engine's handler exists, ends it with no output at all (no partial file,
no partial protocol line), which the add-on reports as an error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fake_engine  # tests/ is on pytest.ini's pythonpath
from addon.core import engine as core_engine
from engine.protocol import parse_line
from engine.result import read_result, remove_stale_temps
from media import make_clip
from test_engine_cli import ROOT, assert_clean_failure, engine_cmd

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX (flock, SIGKILL)")

# A writer that stalls inside the write: the archive's first bytes reach the temp file, then it waits
# (a long write to a slow disk); the parent kills it or lets it live.
_STALLED_WRITER = """
import sys, time
import numpy as np
from engine import result

def slow_savez(fh, **arrays):
    fh.write(b"PK partial archive")
    fh.flush()
    print("writing", flush=True)
    time.sleep(120)

np.savez_compressed = slow_savez
with np.load(sys.argv[1], allow_pickle=False) as z:
    data = {k: z[k] for k in z.files}
result.write_result(sys.argv[2], data)
"""


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".vm-") and p.name.endswith(".tmp"))


def _stalled_writer(src: Path, out: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _STALLED_WRITER, str(src), str(out)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "writing", p.stderr.read() if p.poll() is not None else line
    return p


@pytest.fixture()
def source(tmp_path) -> Path:
    src = tmp_path / "src.npz"
    fake_engine.make_result(src, frames=12, seed=5)
    return src


def test_stale_temp_of_a_killed_writer_is_removed_never_a_live_one(tmp_path, source):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fake_engine.make_result(out_dir / "walk.npz", frames=10, seed=1)       # the user's older result
    killed = _stalled_writer(source, out_dir / "walk.npz")
    live = None
    try:
        first = _temps(out_dir)
        assert len(first) == 1
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert _temps(out_dir) == first                                    # SIGKILL left it behind
        live = _stalled_writer(source, out_dir / "other.npz")              # another run, writing right now
        live_temp = sorted(set(_temps(out_dir)) - set(first))
        assert len(live_temp) == 1
        decoys = [".vm-short.tmp", ".vm-abcdefgh.tmpx", "vm-abcdefgh.tmp", ".vm-ABCDEFGH.tmp"]
        for d in decoys:
            (out_dir / d).write_bytes(b"not ours")
        old = time.time() - 3600
        for name in first + live_temp + decoys:
            os.utime(out_dir / name, (old, old))
        os.symlink(out_dir / "walk.npz", out_dir / ".vm-linklink.tmp")     # a link is never followed/removed
        removed = remove_stale_temps(out_dir, time.time())
        assert removed == first
        assert _temps(out_dir) == sorted(live_temp + [".vm-ABCDEFGH.tmp", ".vm-linklink.tmp", ".vm-short.tmp"])
        for d in decoys:
            assert (out_dir / d).read_bytes() == b"not ours"
        assert read_result(out_dir / "walk.npz")["rotations"].shape[0] == 10   # untouched
        # a temp newer than the run (another run's, however it was made) is left alone
        young = out_dir / ".vm-youngtmp.tmp"
        young.write_bytes(b"x")
        assert remove_stale_temps(out_dir, young.stat().st_mtime) == []
        assert remove_stale_temps(out_dir, young.stat().st_mtime + 1) == [young.name]
    finally:
        for p in (killed, live):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_the_next_engine_run_removes_the_stale_temp(tmp_path, source):
    """End to end: a run killed while writing leaves a temp; the next engine run in that folder (here one
    that fails: the clip has no person) removes it at its start."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    killed = _stalled_writer(source, out_dir / "r.npz")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert len(_temps(out_dir)) == 1
    time.sleep(0.05)
    clip = make_clip(tmp_path / "c.mp4", n=4)
    p = subprocess.run(engine_cmd("run", str(clip), "--out", str(out_dir / "r.npz")), cwd=ROOT,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    msgs = [parse_line(line) for line in p.stdout.splitlines()]
    assert_clean_failure(p.returncode, msgs, "no_person", out_dir)
    assert _temps(out_dir) == [] and list(out_dir.iterdir()) == []


def test_sigterm_in_the_first_50_ms_ends_cleanly_with_no_output(tmp_path):
    """Before ``engine/__main__.py`` installs its handler the interpreter dies of SIGTERM (-15): that must
    leave nothing, not a partial result, not a partial protocol line; after it, error + done, exit 130.
    Delays 0-60 ms cover both sides of that moment on this machine."""
    clip = make_clip(tmp_path / "c.mp4", n=4)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    outcomes = []
    for delay in (0.0, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06):
        p = subprocess.Popen(engine_cmd("run", str(clip), "--out", str(out_dir / "r.npz")), cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGTERM)
        raw, _ = p.communicate(timeout=60)
        if p.returncode == -signal.SIGTERM:
            assert raw == b"", (delay, raw)                                  # no partial line
        else:
            assert raw.endswith(b"\n"), (delay, raw[-200:])
            msgs = [parse_line(line) for line in raw.decode("utf-8").splitlines()]
            assert_clean_failure(p.returncode, msgs, "cancelled", out_dir)
        assert list(out_dir.iterdir()) == [], (delay, list(out_dir.iterdir()))   # no output of any kind
        outcomes.append(p.returncode)
    assert set(outcomes) <= {-signal.SIGTERM, 130}, outcomes


def test_addon_reports_a_silent_death_as_an_error(tmp_path):
    """The add-on's job, for an engine killed before it said anything: not ok, not a success, a message."""
    clip = make_clip(tmp_path / "c.mp4", n=4)
    out = str(tmp_path / "r.npz")
    argv = core_engine.run_argv(sys.executable, str(clip), out, core_engine.RunOptions())
    job = core_engine.EngineJob(argv, cwd=ROOT, env=core_engine.engine_env(ROOT))
    job.start()
    try:
        job._proc.send_signal(signal.SIGTERM)      # at once: before the engine's handler exists, or just after
        assert job.wait(60)
        res = job.outcome()
        assert not res.ok and res.result_path is None and res.message
        if job.returncode == -signal.SIGTERM:
            assert "SIGTERM" in res.message
        else:
            assert job.returncode == 130
        assert not Path(out).exists()
    finally:
        job.kill()
