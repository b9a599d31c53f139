"""Behaviour that protects the user's files and machine: a failed write leaves the older result intact,
and a cancelled engine that ignores every polite request is killed.

The write failure is real, not mocked: the writing process runs under a file-size limit
(``RLIMIT_FSIZE``), so the archive cannot be written past a few kilobytes, as on a full disk. The test
looks only at what is on disk afterwards (the target and the folder's listing), not at how the writer
names or places its temporary file.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from addon.core import engine as core_engine
from engine.errors import EXIT_CODES
from engine.protocol import parse_line
from engine.result import read_result
import fake_engine  # tests/ is on pytest.ini's pythonpath

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "engine" / "data" / "sample_walk.mp4"
LIMIT = 16 * 1024  # bytes: far below a result file (a 12-frame result is ~60 KB)
pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX (RLIMIT_FSIZE, SIGKILL)")


def _limit_file_size() -> None:
    """preexec_fn: writes past LIMIT fail with EFBIG (instead of killing the process with SIGXFSZ)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture()
def older_result(tmp_path) -> Path:
    target = tmp_path / "out" / "walk.npz"
    target.parent.mkdir()
    fake_engine.make_result(target, frames=20, seed=1)
    return target


_WRITER = """
import sys
import numpy as np
from engine.result import write_result
with np.load(sys.argv[1], allow_pickle=False) as z:
    data = {k: z[k] for k in z.files}
write_result(sys.argv[2], data)
"""


def test_failed_write_keeps_the_older_result(older_result, tmp_path):
    """write_result fails mid-archive: the old file is byte-identical and nothing else is left."""
    before = _digest(older_result)
    big = tmp_path / "big.npz"
    fake_engine.make_result(big, frames=600, seed=2)          # larger than LIMIT once written
    assert big.stat().st_size > 4 * LIMIT
    p = subprocess.run([sys.executable, "-c", _WRITER, str(big), str(older_result)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size)
    assert p.returncode != 0, "the write should have failed under the file-size limit"
    assert "File too large" in p.stderr or "EFBIG" in p.stderr or "Errno 27" in p.stderr, p.stderr[-2000:]
    assert _digest(older_result) == before
    assert sorted(os.listdir(older_result.parent)) == [older_result.name]
    read_result(older_result)  # still a valid result


def test_successful_write_replaces_the_older_result(older_result, tmp_path):
    big = tmp_path / "big.npz"
    new = fake_engine.make_result(big, frames=60, seed=2)
    p = subprocess.run([sys.executable, "-c", _WRITER, str(big), str(older_result)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    r = read_result(older_result)
    assert len(r["times"]) == 60
    np.testing.assert_allclose(r["joints_world"], new["joints_world"], atol=1e-6)
    assert sorted(os.listdir(older_result.parent)) == [older_result.name]


@pytest.mark.skipif(not SAMPLE.exists(), reason="bundled sample video missing")
def test_engine_run_that_cannot_write_keeps_the_older_result(older_result):
    """The same through the engine's CLI (12 frames of the sample): a clean error, the old file intact."""
    before = _digest(older_result)
    p = subprocess.run([sys.executable, "-m", "engine", "run", str(SAMPLE), "--out", str(older_result),
                        "--end-frame", "12", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL, preexec_fn=_limit_file_size)
    msgs = [parse_line(line) for line in p.stdout.splitlines()]
    errors = [m for m in msgs if m["type"] == "error"]
    assert p.returncode == EXIT_CODES["output_not_writable"], (p.returncode, msgs[-3:], p.stderr[-2000:])
    assert len(errors) == 1 and errors[0]["code"] == "output_not_writable"
    assert msgs[-1]["type"] == "done" and msgs[-1]["ok"] is False
    assert _digest(older_result) == before
    assert sorted(os.listdir(older_result.parent)) == [older_result.name]


# -- cancel escalation ------------------------------------------------------------------------------
def test_cancel_kills_an_engine_that_ignores_sigterm(tmp_path, monkeypatch):
    """The fake engine in mode ``deaf`` ignores the cancel line and SIGTERM: only SIGKILL stops it.
    The job must end it within the grace period plus the kill delay plus a margin."""
    grace, kill_after, margin = 0.5, 0.5, 2.0
    monkeypatch.setattr(core_engine, "CANCEL_GRACE_S", grace)
    monkeypatch.setattr(core_engine, "KILL_AFTER_S", kill_after)
    monkeypatch.setenv(core_engine.ENV_MODULE, str(ROOT / "tests" / "fake_engine.py"))
    monkeypatch.setenv("FAKE_ENGINE_MODE", "deaf")
    out = str(tmp_path / "r.npz")
    argv = core_engine.run_argv(sys.executable, "v.mp4", out, core_engine.RunOptions())
    job = core_engine.EngineJob(argv, cwd=ROOT, env=core_engine.engine_env(ROOT))
    job.start()
    try:
        t0 = time.monotonic()
        # wait until the fake has installed its SIGTERM handler (it says so in a progress message)
        while not any(m["type"] == "progress" for m in job.poll() + job.messages):
            assert time.monotonic() - t0 < 30, "the fake engine never started"
            time.sleep(0.02)
        job.cancel()
        t1 = time.monotonic()
        finished = job.wait(grace + kill_after + margin)
        elapsed = time.monotonic() - t1
        assert finished, f"the engine still runs {elapsed:.1f} s after cancel (no escalation to SIGKILL?)"
        assert elapsed >= grace  # the polite request had its grace period
        assert job.returncode == -signal.SIGKILL, job.returncode
        out_ = job.outcome()
        assert out_.cancelled and not out_.ok
        assert not Path(out).exists()
    finally:
        job.kill()
