"""Create the engine's Python environment from scratch (standard library only).

    python3.11 engine/setup_env.py --venv DIR [--dev] [--no-anny-cache]

Steps: create a venv, pip-install ``engine/requirements.txt`` (``requirements-dev.txt`` with --dev:
adds bpy and pytest for the test suite), then prebuild the anny body-model cache inside the venv
(``DIR/anny-cache``) so that later runs start in seconds and never download anything. Prints one line
per step on stdout (``STEP i/n: ...``, then ``DONE`` or ``FAILED: reason``); exit status 0 on success.
The Blender add-on's "Set up engine" button runs this same script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANNY_RIGS = ("cmu_mb",)  # rigs the engine and the tools build; each costs ~75 s once


def say(msg: str) -> None:
    print(msg, flush=True)


def venv_python(d: Path) -> Path:
    return d / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def prebuild_anny(py: Path, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    code = (
        "import anny\n"
        f"for rig in {ANNY_RIGS!r}:\n"
        "    anny.Anny(rig=rig)\n"
    )
    env = dict(os.environ, ANNY_CACHE_DIR=str(cache))
    subprocess.run([str(py), "-c", code], check=True, env=env, stdout=sys.stderr)
    # only the compact model data is read after the first build (platform.md): drop the rest
    for f in cache.rglob("*.safetensors"):
        if not f.name.startswith("build_compact_model_data_"):
            f.unlink()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", required=True, help="folder of the environment to create or update")
    ap.add_argument("--dev", action="store_true", help="also install bpy and pytest (tests)")
    ap.add_argument("--no-anny-cache", action="store_true", help="skip prebuilding the body-model cache")
    args = ap.parse_args(argv)
    target = Path(args.venv).resolve()
    if sys.version_info[:2] != (3, 11):
        say(f"FAILED: the engine needs Python 3.11 (mediapipe 0.10.21 and bpy 4.5 wheels); this is "
            f"{sys.version.split()[0]}. Run this script with python3.11.")
        return 1
    steps = 3 if not args.no_anny_cache else 2
    try:
        py = venv_python(target)
        if not py.exists():
            say(f"STEP 1/{steps}: creating the environment in {target}")
            venv.EnvBuilder(with_pip=True, clear=False).create(target)
        else:
            say(f"STEP 1/{steps}: using the existing environment in {target}")
        req = HERE / ("requirements-dev.txt" if args.dev else "requirements.txt")
        say(f"STEP 2/{steps}: installing packages from {req.name} (a few minutes, ~2.5 GB)")
        subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(req)],
                       check=True, stdout=sys.stderr)
        if not args.no_anny_cache:
            say(f"STEP 3/{steps}: prebuilding the anny body model (about 75 s, once)")
            prebuild_anny(py, target / "anny-cache")
    except subprocess.CalledProcessError as e:
        say(f"FAILED: {' '.join(map(str, e.cmd[:4]))} ... exited with status {e.returncode} (details above on stderr)")
        return 1
    except OSError as e:
        say(f"FAILED: {e}")
        return 1
    say(f"DONE: engine python is {py}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
