"""The engine's stdout protocol: JSON lines from a closed vocabulary, plus cancellation.

stdout carries only these messages (one JSON object per line, UTF-8); logs go to stderr.
Vocabulary (``type``): start, progress, warning, error, result, done. ``done`` is always last.
Cancellation: a line ``cancel`` on stdin, SIGTERM or SIGINT sets a flag that every ``progress`` call
checks (it raises :class:`Cancelled`), so the run stops within one frame's work. While the run is
``interruptible`` a cancel also ends it at once, from the signal handler or the stdin thread: it
reports ``error`` (cancelled) and ``done`` and leaves with ``os._exit(130)``, so slow start-up work
(imports, model loading) cannot delay it. (Raising an exception from the handler instead can leave
import or thread locks held: a deadlock.) The final write is ``shielded``: a cancel arriving then is
too late and the run completes.
See docs/protocol.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
from typing import IO, Any, Iterator

from .errors import Cancelled

PROTOCOL_VERSION = 1
MESSAGE_TYPES = frozenset({"start", "progress", "warning", "error", "result", "done"})


class Protocol:
    """Writes protocol messages and tracks cancellation.

    ``progress`` is rate-limited (at most ``max_rate`` messages a second per stage, plus the first and
    last of each stage) and raises :class:`Cancelled` when a cancel was requested.
    """

    def __init__(self, stream: IO[str] | None = None, *, max_rate: float = 10.0):
        if stream is None:
            # A private handle on fd 1, so stray print() from libraries can be redirected elsewhere.
            stream = io.TextIOWrapper(os.fdopen(os.dup(1), "wb", buffering=0), encoding="utf-8",
                                      line_buffering=True, write_through=True)
        self._out = stream
        self._lock = threading.RLock()   # re-entrant: the signal handler may emit while main is emitting
        self._cancel = threading.Event()
        self._last_progress: dict[str, float] = {}
        self._min_dt = 1.0 / max_rate if max_rate > 0 else 0.0
        self.done_sent = False
        self.interruptible = False    # a cancel ends the process at once (see the module docstring)
        self._shielded = 0
        self._state = threading.RLock()

    # -- cancellation -------------------------------------------------------------------------
    def request_cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancel(self) -> None:
        if self._cancel.is_set() and not self._shielded:
            raise Cancelled()

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """A section a cancel must not cut short (writing the result and reporting it)."""
        with self._state:
            self._shielded += 1
        try:
            yield
        finally:
            with self._state:
                self._shielded -= 1

    def stop_now(self) -> None:
        """If interruptible and not shielded: report the cancel and leave the process now (any thread).
        Nothing the engine writes is open outside the shielded section, so nothing is left behind."""
        with self._state:
            if not self.interruptible or self._shielded or self.done_sent:
                return
            self.emit("error", code="cancelled", message="Cancelled by the user.", exit_code=130)
            self.done(False, 130)
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os._exit(130)

    def watch_stdin(self, stdin: IO[str] | None = None) -> None:
        """Start a daemon thread that requests cancel on a ``cancel`` line (or on EOF if asked)."""
        stdin = stdin or sys.stdin
        if stdin is None or stdin.closed:
            return

        def _reader() -> None:
            try:
                for line in stdin:
                    if line.strip().lower() == "cancel":
                        self.request_cancel()
                        self.stop_now()
                        return
            except (OSError, ValueError):
                return

        threading.Thread(target=_reader, name="cancel-watcher", daemon=True).start()

    def install_signal_handlers(self) -> None:
        def _handler(signum, frame):  # noqa: ARG001
            self.request_cancel()
            self.stop_now()

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, _handler)
            except (ValueError, OSError):  # not in the main thread
                pass

    # -- messages -----------------------------------------------------------------------------
    def emit(self, type_: str, **fields: Any) -> None:
        assert type_ in MESSAGE_TYPES, f"unknown message type {type_!r}; valid: {sorted(MESSAGE_TYPES)}"
        msg = {"type": type_, **fields}
        line = json.dumps(msg, ensure_ascii=False, allow_nan=False, default=_jsonable)
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):
                # The reader went away: treat it as a cancel.
                self._cancel.set()
        if type_ == "done":
            self.done_sent = True

    def start(self, **fields: Any) -> None:
        self.emit("start", protocol=PROTOCOL_VERSION, **fields)

    def progress(self, stage: str, frame: int, total: int | None, *, force: bool = False,
                 message: str | None = None) -> None:
        """Report progress of ``stage``; raises Cancelled if a cancel was requested."""
        self.check_cancel()
        now = time.monotonic()
        last = self._last_progress.get(stage)
        final = total is not None and frame >= total
        if force or last is None or final or now - last >= self._min_dt:
            self._last_progress[stage] = now
            fields: dict[str, Any] = {"stage": stage, "frame": int(frame),
                                      "total": None if total is None else int(total)}
            if total:
                fields["fraction"] = round(min(1.0, frame / total), 4)
            if message:
                fields["message"] = message
            self.emit("progress", **fields)

    def warning(self, code: str, message: str) -> None:
        self.emit("warning", code=code, message=message)

    def error(self, code: str, message: str, exit_code: int) -> None:
        self.emit("error", code=code, message=message, exit_code=exit_code)

    def result(self, path: str, **fields: Any) -> None:
        self.emit("result", path=path, **fields)

    def done(self, ok: bool, exit_code: int) -> None:
        self.emit("done", ok=ok, exit_code=exit_code, cancelled=exit_code == 130)


def _jsonable(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def parse_line(line: str) -> dict[str, Any]:
    """Parse one protocol line (for clients and tests); raises ValueError on anything else."""
    msg = json.loads(line)
    if not isinstance(msg, dict) or msg.get("type") not in MESSAGE_TYPES:
        raise ValueError(f"not a protocol message: {line!r}")
    return msg
