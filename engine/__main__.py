import logging
import os
import sys

from .cli import main

code = main()
# Leave at once: interpreter shutdown with torch and mediapipe loaded takes about a second, and every
# message (ending with ``done``) is already written and flushed.
sys.stdout.flush()
sys.stderr.flush()
logging.shutdown()
os._exit(code)
