# Catch SIGTERM/SIGINT before anything else is imported: a cancel that arrives during start-up is
# kept and honoured as soon as the protocol is set up (exit 130 with error + done), never a silent death.
import signal as _signal

_early: list[int] = []


def _early_handler(signum, frame):  # noqa: ARG001
    _early.append(signum)


for _sig in (_signal.SIGTERM, _signal.SIGINT):
    _signal.signal(_sig, _early_handler)

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from .cli import main  # noqa: E402

code = main(early_signals=_early)
# Leave at once: interpreter shutdown with torch and mediapipe loaded takes about a second, and every
# message (ending with ``done``) is already written and flushed.
sys.stdout.flush()
sys.stderr.flush()
logging.shutdown()
os._exit(code)
