"""Running the engine (docs/protocol.md) from the add-on: paths, command lines and a non-blocking job.

Nothing here imports bpy: the job runs the engine as a subprocess with an argument list, a reader
thread turns its stdout JSON lines into messages on a queue, and the caller (a modal timer in the UI,
a loop in background mode) calls :meth:`EngineJob.poll` whenever it likes; it never blocks.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ENV_PYTHON = "VIDEO_MOCAP_ENGINE_PYTHON"
# Module name (run as ``python -m NAME``) or path to a ``.py`` script standing in for the engine
# (tests use a fake engine this way).
ENV_MODULE = "VIDEO_MOCAP_ENGINE_MODULE"
DEFAULT_MODULE = "engine"
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")

# Overall progress: decode+pose 0.85, solve 0.10, trajectory+write 0.05 (docs/protocol.md).
_STAGE_SPAN = {"decode": (0.0, 0.85), "pose": (0.0, 0.85), "solve": (0.85, 0.95),
               "trajectory": (0.95, 0.98), "refine": (0.95, 0.98), "write": (0.98, 1.0)}
# Keypoint quality -> what the engine is told (``run --keypoints-quality``); Full is the engine's default
# and is not passed, so an engine without the option still runs the default import.
KEYPOINT_QUALITIES = ("full", "heavy")
CANCEL_GRACE_S = 3.0
KILL_AFTER_S = 3.0


def parse_message(line: str | bytes) -> dict[str, Any] | None:
    """One line of the engine's stdout -> a protocol message (a JSON object with a ``type``), or None.

    The one protocol reader of the project: the add-on's job and the benchmarks use it.
    """
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) and "type" in msg else None


def venv_python(venv: str | os.PathLike[str]) -> Path:
    venv = Path(venv)
    return venv / "Scripts" / "python.exe" if os.name == "nt" else venv / "bin" / "python"


def resolve_python(pref_path: str, default_venv: str | os.PathLike[str] | None) -> Path | None:
    """Engine interpreter: the preference if set, else $VIDEO_MOCAP_ENGINE_PYTHON, else the default venv."""
    if pref_path.strip():
        return Path(os.path.expanduser(pref_path.strip()))
    env = os.environ.get(ENV_PYTHON, "").strip()
    if env:
        return Path(env)
    return venv_python(default_venv) if default_venv else None


def engine_argv(python: str | os.PathLike[str], *args: str) -> list[str]:
    entry = os.environ.get(ENV_MODULE, "").strip() or DEFAULT_MODULE
    head = [os.fspath(python)] + ([entry] if entry.endswith(".py") else ["-m", entry])
    return head + list(args)


def engine_env(engine_root: str | os.PathLike[str]) -> dict[str, str]:
    """Environment for the engine: its root on PYTHONPATH, UTF-8 I/O, unbuffered output."""
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.fspath(engine_root) + (os.pathsep + old if old else "")
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class RunOptions:
    """Options of one engine run (the UI's options, minus what is applied in Blender)."""

    frame_start: int = 0          # first video frame (0-based)
    frame_end: int = -1           # last video frame, inclusive; -1 = to the end (engine: stop before)
    camera: str = "auto"          # static | moving | auto
    focal_px: float = 0.0         # focal length in pixels; 0 = unknown
    device: str = "auto"          # auto | cpu | cuda
    keypoint_quality: str = "full"  # full | heavy (BlazePose Heavy: opt-in install, ~3-5x slower pose pass)

    def args(self) -> list[str]:
        if self.keypoint_quality not in KEYPOINT_QUALITIES:
            raise ValueError(f"keypoint_quality must be one of {KEYPOINT_QUALITIES}, got {self.keypoint_quality!r}")
        a = ["--camera", self.camera, "--device", self.device]
        if self.keypoint_quality != "full":
            a += ["--keypoints-quality", self.keypoint_quality]
        if self.frame_start > 0:
            a += ["--start-frame", str(self.frame_start)]
        if self.frame_end >= 0:
            a += ["--end-frame", str(self.frame_end + 1)]
        if self.focal_px > 0:
            a += ["--focal", f"{self.focal_px:g}"]
        return a


def run_argv(python: str | os.PathLike[str], video: str, out: str, options: RunOptions) -> list[str]:
    return engine_argv(python, "run", video, "--out", out, *options.args())


def check_video_path(path: str) -> str | None:
    """A user-facing message if ``path`` can't be a video to process, else None."""
    if not path:
        return "No video selected"
    if not os.path.isfile(path):
        return f"Video not found: {path}"
    if not path.lower().endswith(VIDEO_EXTENSIONS):
        return f"Not a video file ({os.path.basename(path)}); expected one of {', '.join(VIDEO_EXTENSIONS)}"
    return None


def overall_fraction(msg: dict[str, Any]) -> float | None:
    """Overall 0..1 progress from a ``progress`` message, using the protocol's stage weights."""
    span = _STAGE_SPAN.get(str(msg.get("stage")))
    frac = msg.get("fraction")
    if span is None:
        return None
    if not isinstance(frac, (int, float)):
        return span[0]
    return span[0] + (span[1] - span[0]) * min(1.0, max(0.0, float(frac)))


@dataclass
class JobOutcome:
    ok: bool
    cancelled: bool
    message: str                  # user-facing: the engine's error, or a summary on success
    exit_code: int | None
    result_path: str | None = None
    warnings: list[str] = field(default_factory=list)


class EngineJob:
    """The engine as a subprocess. ``poll()`` drains messages; ``cancel()`` asks it to stop."""

    def __init__(self, argv: list[str], *, cwd: str | os.PathLike[str], env: dict[str, str]):
        self.argv = argv
        self._cwd = os.fspath(cwd)
        self._env = env
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._stdout_closed = False
        self._cancel_at: float | None = None
        self.last_activity = time.monotonic()   # when the engine last wrote a protocol message
        self.stalled_after: float | None = None  # set when wait() stopped an engine that made no progress
        self.messages: list[dict[str, Any]] = []
        self.fraction = 0.0
        self.status = "Starting engine"
        self.start_error: str | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.last_activity = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.argv, cwd=self._cwd, env=self._env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                errors="replace", bufsize=1)
        except OSError as e:
            self.start_error = (f"Could not start the engine ({self.argv[0]}): {e.strerror or e}. "
                                "Set up the engine in the add-on preferences")
            self._stdout_closed = True
            return
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self._proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._proc.stderr,), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self, fh: IO[str]) -> None:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            msg = parse_message(line)
            if msg is None:
                self._stderr.append(line)   # not protocol: keep it with the logs
                continue
            self.last_activity = time.monotonic()
            self._queue.put(msg)
        self._queue.put(None)

    def _read_stderr(self, fh: IO[str]) -> None:
        for line in fh:
            if line.strip():
                self._stderr.append(line.rstrip())

    def cancel(self) -> None:
        """Ask the engine to stop (a ``cancel`` line); ``poll`` terminates it after a grace period."""
        if self._cancel_at is not None:
            return
        self._cancel_at = time.monotonic()
        self.status = "Cancelling"
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return
        try:
            proc.stdin.write("cancel\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            proc.terminate()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_at is not None

    def poll(self) -> list[dict[str, Any]]:
        """New messages since the last call (never blocks); also escalates a pending cancel."""
        new: list[dict[str, Any]] = []
        while True:
            try:
                msg = self._queue.get_nowait()
            except queue.Empty:
                break
            if msg is None:
                self._stdout_closed = True
                continue
            new.append(msg)
            self._update(msg)
        self.messages.extend(new)
        proc = self._proc
        if self._cancel_at is not None and proc is not None and proc.poll() is None:
            waited = time.monotonic() - self._cancel_at
            if waited > CANCEL_GRACE_S + KILL_AFTER_S:
                proc.kill()
            elif waited > CANCEL_GRACE_S:
                proc.terminate()
        return new

    def _update(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "progress":
            f = overall_fraction(msg)
            if f is not None:
                self.fraction = max(self.fraction, f)
            stage = str(msg.get("stage", "")).capitalize()
            total = msg.get("total")
            self.status = f"{stage} {msg.get('frame', '')}/{total}" if total else stage
        elif kind == "start":
            self.status = f"Engine started ({msg.get('device', '?')})"
        elif kind == "result":
            self.fraction = 1.0

    @property
    def finished(self) -> bool:
        if self.start_error is not None:
            return True
        proc = self._proc
        return proc is not None and self._stdout_closed and proc.poll() is not None

    def wait(self, timeout: float | None = None, *, interval: float = 0.05,
             stall_timeout: float | None = None) -> bool:
        """Poll until finished (background mode); False on timeout.

        ``stall_timeout``: an engine that writes no protocol message for this many seconds is stopped
        (cancel line, then SIGTERM after 3 s, SIGKILL after 6 s); :meth:`outcome` then says so.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            self.poll()
            now = time.monotonic()
            if (stall_timeout is not None and self.stalled_after is None and self._proc is not None
                    and now - self.last_activity > stall_timeout):
                self.stalled_after = stall_timeout
                self.cancel()
            if (self._cancel_at is not None and now - self._cancel_at > CANCEL_GRACE_S + KILL_AFTER_S + 2.0
                    and self._proc is not None and self._proc.poll() is None):
                self.kill()       # nobody else escalates while we block
            if end is not None and now > end:
                return False
            time.sleep(interval)
        self.poll()
        return True

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    # -- result ----------------------------------------------------------------------------------
    @property
    def last_log(self) -> str:
        return self._stderr[-1] if self._stderr else ""

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def outcome(self) -> JobOutcome:
        if self.start_error is not None:
            return JobOutcome(False, False, self.start_error, None)
        code = self._proc.returncode if self._proc is not None else None
        warnings = [str(m.get("message", m.get("code", ""))) for m in self.messages if m.get("type") == "warning"]
        done = next((m for m in reversed(self.messages) if m.get("type") == "done"), None)
        error = next((m for m in reversed(self.messages) if m.get("type") == "error"), None)
        result = next((m for m in reversed(self.messages) if m.get("type") == "result"), None)
        if self.stalled_after is not None:
            return JobOutcome(False, False, f"The engine made no progress for {self.stalled_after:g} s and was "
                                            "stopped", code, warnings=warnings)
        cancelled = bool(done and done.get("cancelled")) or (self.cancel_requested and not (done and done.get("ok")))
        if cancelled:
            return JobOutcome(False, True, "Cancelled", code, warnings=warnings)
        if done is not None and done.get("ok") and result is not None and code == 0:
            frames = result.get("frames", "?")
            return JobOutcome(True, False, f"{frames} frames", code, str(result.get("path")), warnings)
        if error is not None:
            return JobOutcome(False, False, str(error.get("message", error.get("code"))), code, warnings=warnings)
        tail = next((line for line in reversed(self._stderr) if line.strip()), "")
        msg = f"The engine stopped unexpectedly (exit code {code})"
        if code is not None and code < 0:   # killed by a signal before it could report anything
            try:
                msg = f"The engine stopped unexpectedly (killed by {signal.Signals(-code).name})"
            except ValueError:
                pass
        return JobOutcome(False, False, msg + (f": {tail}" if tail else ""), code, warnings=warnings)


@dataclass
class EngineStatus:
    found: bool
    ok: bool
    message: str
    version: str = ""
    device: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def check_engine(python: Path | None, engine_root: str | os.PathLike[str], *, timeout: float = 60.0) -> EngineStatus:
    """Run ``<python> -m engine check --json`` (one JSON object); fall back to ``--version``."""
    if python is None or not python.is_file():
        return EngineStatus(False, False, f"Engine Python not found: {python}" if python else "No engine Python set")
    env = engine_env(engine_root)
    try:
        p = subprocess.run(engine_argv(python, "check", "--json"), cwd=os.fspath(engine_root), env=env,
                           capture_output=True, text=True, encoding="utf-8", errors="replace",
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return EngineStatus(True, False, f"Engine check failed: {e}")
    info: dict[str, Any] | None = None
    for line in reversed(p.stdout.splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            info = obj
            break
    if info is not None:
        ok = bool(info.get("ok", p.returncode == 0))
        problems = info.get("problems") or []
        default = "Engine ready" if ok else "Engine has problems: " + "; ".join(str(p) for p in problems)
        msg = str(info.get("message", default))
        return EngineStatus(True, ok, msg, str(info.get("engine_version", info.get("version", ""))),
                            str(info.get("device", "")), info)
    try:
        v = subprocess.run(engine_argv(python, "--version"), cwd=os.fspath(engine_root), env=env,
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return EngineStatus(True, False, f"Engine check failed: {e}")
    if v.returncode == 0 and v.stdout.strip():
        return EngineStatus(True, True, "Engine found (no 'check' command)", v.stdout.strip().split()[-1])
    tail = (p.stderr or v.stderr).strip().splitlines()
    return EngineStatus(True, False, "Engine is broken: " + (tail[-1] if tail else f"exit code {p.returncode}"))


def venv_of(python: str | os.PathLike[str] | None) -> Path | None:
    """The virtual environment an interpreter belongs to (``<venv>/bin/python``), or None."""
    if not python:
        return None
    python = Path(python)
    for folder in (python.parent.parent, python.parent):   # bin/python (POSIX), Scripts/python.exe (Windows)
        if (folder / "pyvenv.cfg").is_file():
            return folder
    return None


def heavy_installed(status: EngineStatus) -> bool | None:
    """Whether the checked engine can run ``--keypoints-quality heavy`` (None: the check did not say)."""
    heavy = (status.info.get("keypoint_quality") or {}).get("heavy") if status.info else None
    return bool(heavy.get("installed")) if isinstance(heavy, dict) else None


def setup_argv(engine_root: str | os.PathLike[str], venv: str | os.PathLike[str], *,
               heavy: bool = False, heavy_only: bool = False) -> list[str]:
    """Command that creates the engine venv (engine/setup_env.py, stdlib only) with this Python;
    ``heavy`` also installs BlazePose Heavy (npm), ``heavy_only`` installs only that into an existing venv."""
    argv = [sys.executable, os.path.join(os.fspath(engine_root), "engine", "setup_env.py"), "--venv", os.fspath(venv)]
    return argv + (["--heavy-only"] if heavy_only else ["--heavy"] if heavy else [])
