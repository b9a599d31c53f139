"""Up-front checks of a run's options and output path, before anything slow is imported or started.

Every numeric option must be finite and in range (``usage`` error naming the option), and the output
must be a path the engine may replace: never the input video itself (after resolving links), never a
folder, FIFO, device or other special file, in an existing writable folder, with a file name the file
system accepts. Only the standard library is imported here.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

from .errors import EngineError

# name -> (flag, lowest, highest, what); bounds are inclusive.
NUMERIC_LIMITS: dict[str, tuple[str, float, float, str]] = {
    "start_frame": ("--start-frame", 0, 10**9, "a frame index"),
    "end_frame": ("--end-frame", 1, 10**9, "a frame index"),
    "fps": ("--fps", 0.1, 1000.0, "frames per second"),
    "focal": ("--focal", 10.0, 100000.0, "pixels"),
    "fov": ("--fov", 1.0, 170.0, "degrees of horizontal field of view"),
    "max_side": ("--max-side", 64, 8192, "pixels (0 keeps the full size)"),
    "iterations": ("--iterations", 0, 1000, "solver steps"),
    "smoothing": ("--smoothing", 0.0, 2.0, "seconds (0 = off)"),
}
# Temporary files are named ``.vm-XXXXXXXX.tmp`` (tempfile adds 8 characters): a short name, so any
# legal output name also leaves room for it.
TEMP_PREFIX, TEMP_SUFFIX = ".vm-", ".tmp"


def check_numbers(opts: Any) -> None:
    """Raise ``usage`` for the first numeric option (an attribute of ``opts``) that is out of range."""
    for name, (flag, lo, hi, unit) in NUMERIC_LIMITS.items():
        value = getattr(opts, name, None)
        if value is None:
            continue
        if name == "max_side" and value == 0:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EngineError("usage", f"{flag} must be a number, got {value!r}.")
        if not math.isfinite(value):
            raise EngineError("usage", f"{flag} must be a finite number, got {value}.")
        if not lo <= value <= hi:
            raise EngineError("usage", f"{flag} must be between {lo:g} and {hi:g} ({unit}), got {value:g}.")
    start, end = getattr(opts, "start_frame", None), getattr(opts, "end_frame", None)
    if start is not None and end is not None and end <= start:
        raise EngineError("usage", f"--end-frame ({end}) must be greater than --start-frame ({start}).")


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the folder's file system takes; 255 when it cannot be asked."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def check_output(out: str, video: str | None = None) -> Path:
    """The path to write the result to (a symlink resolved to its target); raises EngineError."""
    if not out or not str(out).strip():
        raise EngineError("usage", "--out needs a file name.")
    if str(out).endswith(("/", os.sep)) or (os.altsep and str(out).endswith(os.altsep)):
        raise EngineError("output_not_writable", f"The output path '{out}' ends with a folder separator; "
                                                 "give a file name.")
    path = Path(out)
    limit = name_max(path.parent if str(path.parent) else Path("."))
    if len(os.fsencode(path.name)) > limit:
        raise EngineError("output_not_writable", f"The output file name is too long ({len(os.fsencode(path.name))} "
                                                 f"bytes; this file system allows {limit}).")
    if path.is_symlink():   # write where the link points, keep the link
        path = Path(os.path.realpath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if video is not None:
        try:
            same = os.path.samefile(path, video)
        except OSError:     # either does not exist (yet): not the same file
            same = False
        if same or os.path.realpath(path) == os.path.realpath(video):
            raise EngineError("usage", f"The output '{out}' is the input video itself; choose another file "
                                       "name for the result (the video is never overwritten).")
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise EngineError("output_not_writable", f"Cannot use the output path '{out}': {e.strerror or e}.") from e
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise EngineError("output_not_writable", f"The output path '{out}' is a folder; give a file name.")
        if not stat.S_ISREG(st.st_mode):
            raise EngineError("output_not_writable", f"The output path '{out}' exists and is not a regular file "
                                                     "(a pipe, device or socket); it is left alone.")
    if not folder.is_dir():
        raise EngineError("output_not_writable", f"The output folder '{folder}' does not exist.")
    # Checked without creating a file (a cancel may end the process at any moment outside the write).
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    if read_only or not os.access(folder, os.W_OK | os.X_OK):
        raise EngineError("output_not_writable", f"Cannot write to the output folder '{folder}': "
                                                 + ("read-only file system." if read_only else "permission denied."))
    return path
