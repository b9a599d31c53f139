"""The engine's stdout protocol: JSON lines from a closed vocabulary, plus cancellation.

stdout carries only these messages (one JSON object per line, UTF-8); logs go to stderr.
Vocabulary (``type``): start, progress, warning, error, result, done. ``done`` is always last.
Cancellation: a line ``cancel`` on stdin, SIGTERM or SIGINT sets a flag that every ``progress`` call
checks (it raises :class:`Cancelled`), so the run stops within one frame's work. While the run is
``interruptible`` the first cancel also raises :class:`Cancelled` in the main thread at once (like
Ctrl-C does), so slow start-up work (imports, model loading, waiting for a thread) stops too; the final
write is ``shielded``: a cancel arriving then is too late and the run completes.
See docs/protocol.md.
"""

from __future__ import annotations

import _thread
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
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._last_progress: dict[str, float] = {}
        self._min_dt = 1.0 / max_rate if max_rate > 0 else 0.0
        self.done_sent = False
        self.interruptible = False    # raise Cancelled from the signal handler (main thread)
        self._shielded = 0
        self._raised = False

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
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1

    def _interrupt_now(self) -> bool:
        """Whether a cancel should raise in the main thread now (once per run at most)."""
        if self.interruptible and not self._shielded and not self._raised:
            self._raised = True
            return True
        return False

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
                        if self.interruptible and not self._shielded and not self._raised:
                            _thread.interrupt_main(signal.SIGINT)   # runs the handler below
                        return
            except (OSError, ValueError):
                return

        threading.Thread(target=_reader, name="cancel-watcher", daemon=True).start()

    def install_signal_handlers(self) -> None:
        def _handler(signum, frame):  # noqa: ARG001
            self.request_cancel()
            if self._interrupt_now():
                raise Cancelled()

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
