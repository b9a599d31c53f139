"""One import: start the engine job, follow it, then apply the result. Shared by the modal operator,
the background (blocking) path and the batch command."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import bpy

from ..core import engine as core_engine
from ..core.result import ResultError, read_result
from . import apply, importer, prefs
from .retarget_apply import RetargetOptions


@dataclass(frozen=True)
class ImportRequest:
    video: str
    options: core_engine.RunOptions
    target: str = ""             # armature object name (own: re-keyed; other rigs: retargeted); "" = create one
    set_scene: bool = True
    engine_python: str = ""      # override of the preference / environment
    keep_result: str = ""        # also keep the engine's result file here (batch --keep-result)
    retarget: RetargetOptions = RetargetOptions()   # when target is another rig


class ImportSession:
    """Engine job + result application. ``start`` then ``poll`` until ``job.finished``, then ``finish``."""

    def __init__(self, request: ImportRequest):
        self.request = request
        self.job: core_engine.EngineJob | None = None
        self._tmp: str | None = None
        self.error: str | None = None
        self.obj_name: str = ""
        self.warnings: list[str] = []

    def _target(self) -> bpy.types.Object | None:
        if not self.request.target:
            return None
        obj = bpy.data.objects.get(self.request.target)
        if obj is None:
            raise apply.ApplyError(f"Armature '{self.request.target}' not found")
        return obj

    def start(self, context: bpy.types.Context) -> str | None:
        """Check the inputs and start the engine; returns an error message (nothing started) or None."""
        video = bpy.path.abspath(self.request.video)
        problem = core_engine.check_video_path(video)
        if problem:
            return problem
        try:
            importer.check_target(self._target())
        except apply.ApplyError as e:
            return str(e)
        python = prefs.engine_python(context, self.request.engine_python)
        if python is None or not python.is_file():
            return (f"Engine not found ({python}): use 'Set up engine' in the add-on preferences "
                    "or point it at an engine Python")
        root = prefs.engine_root()
        try:
            self._tmp = tempfile.mkdtemp(prefix="video_mocap_")
        except OSError as e:
            return f"Cannot create a temporary folder: {e}"
        out = os.path.join(self._tmp, "result.npz")
        argv = core_engine.run_argv(python, video, out, self.request.options)
        self.job = core_engine.EngineJob(argv, cwd=root, env=core_engine.engine_env(root))
        self.job.start()
        return None

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def finish(self, context: bpy.types.Context) -> tuple[bool, str]:
        """Apply the result if the engine succeeded; (ok, message). Always removes temporary files."""
        assert self.job is not None and self.job.finished
        try:
            out = self.job.outcome()
            self.warnings = out.warnings
            if not out.ok:
                return False, out.message
            assert out.result_path is not None
            try:
                result = read_result(out.result_path)
                if self.request.keep_result:
                    tmp = self.request.keep_result + ".part"
                    shutil.copyfile(out.result_path, tmp)
                    os.replace(tmp, self.request.keep_result)  # atomic: never a half-written file
                obj = importer.import_result(context, result, name=apply.action_name(self.request.video),
                                             target=self._target(), set_scene=self.request.set_scene,
                                             options=self.request.retarget)
            except (ResultError, apply.ApplyError) as e:
                return False, str(e)
            except OSError as e:
                return False, f"could not keep the result file: {e}"
            self.obj_name = obj.name
            return True, f"Imported {result.frames} frames onto '{obj.name}'"
        finally:
            self.cleanup()

    def run_blocking(self, context: bpy.types.Context, *, timeout: float | None = None) -> tuple[bool, str]:
        err = self.start(context)
        if err:
            self.cleanup()
            return False, err
        assert self.job is not None
        if not self.job.wait(timeout):
            self.job.kill()
            self.job.wait(10)
        return self.finish(context)

    def cleanup(self) -> None:
        if self.job is not None and not self.job.finished:
            self.job.kill()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


