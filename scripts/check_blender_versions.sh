#!/usr/bin/env bash
# Check the extension on other Blender versions: for each bpy version, a throwaway venv under /tmp
# gets that bpy wheel (plus pytest and scipy) and runs the add-on's Blender tests (validate, build,
# install, enable, import a fixture, cancel, failures, unregister, batch). The fake engine runs in the
# project's dev venv (FAKE_ENGINE_PYTHON). Usage: scripts/check_blender_versions.sh [VERSION_SPEC...]
# e.g. scripts/check_blender_versions.sh '4.2.*' '5.0.*'   (the default). Python 3.11 needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
DEV_PY="${FAKE_ENGINE_PYTHON:-$ROOT/.venv/bin/python}"
SPECS=("$@")
[ ${#SPECS[@]} -gt 0 ] || SPECS=('4.2.*' '5.0.*')
status=0
for spec in "${SPECS[@]}"; do
  tag="${spec//[^0-9]/}"
  venv="/tmp/video_mocap_bpy${tag}"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import bpy" 2>/dev/null; then
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$venv/bin/pip" install -q "bpy==${spec}" pytest scipy
  fi
  version="$("$venv/bin/python" -c 'import bpy; print(bpy.app.version_string)' 2>/dev/null | tail -1)"
  echo "== bpy ${version} =="
  if (cd "$ROOT" && FAKE_ENGINE_PYTHON="$DEV_PY" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/blender); then
    echo "OK bpy ${version}"
  else
    echo "FAILED bpy ${version}"
    status=1
  fi
done
exit $status
