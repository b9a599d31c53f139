"""Engine errors: each has a stable code (used in protocol messages) and a distinct exit status."""

from __future__ import annotations

# code -> (exit status, short title). Documented in docs/protocol.md; keep in sync.
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "usage": 2,               # bad command line (argparse also exits 2)
    "input_not_found": 3,     # the video path does not exist or is not a file
    "invalid_video": 4,       # not a video, unreadable or corrupt
    "no_frames": 5,           # no video stream (audio-only) or zero decodable frames
    "no_person": 6,           # no person detected in any frame
    "output_not_writable": 7, # the output folder is missing/not writable, or the disk is full
    "video_too_large": 8,     # resolution beyond what the engine accepts
    "environment": 9,         # a dependency or model file is missing/broken
    "device_unavailable": 10, # --device cuda asked for but CUDA is not available
    "internal": 20,           # a bug: the message says what failed
    "cancelled": 130,         # cancel line on stdin, SIGTERM or SIGINT
}


class EngineError(Exception):
    """An error with a user-facing message and a stable code."""

    def __init__(self, code: str, message: str):
        assert code in EXIT_CODES, f"unknown error code {code!r}; valid: {sorted(EXIT_CODES)}"
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.code]


class Cancelled(EngineError):
    def __init__(self, message: str = "Cancelled by the user."):
        super().__init__("cancelled", message)
