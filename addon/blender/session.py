"""One import: start the engine job, follow it, then apply the result. Shared by the modal operator,
the background (blocking) path and the batch command."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

import bpy

from ..core import engine as core_engine
from ..core.result import ResultError, read_result
from ..core.retarget import RetargetError
from . import apply, importer, prefs
from .retarget_apply import RetargetOptions
from .transaction import SceneTransaction

log = logging.getLogger(__name__)
DEFAULT_STALL_TIMEOUT_S = 300.0   # background/batch: stop an engine that reports nothing for this long


@dataclass(frozen=True)
class ImportRequest:
    video: str
    options: core_engine.RunOptions
    target: str = ""             # armature object name (own: re-keyed; other rigs: retargeted); "" = create one
    set_scene: bool = True
    engine_python: str = ""      # override of the preference / environment
    keep_result: str = ""        # also keep the engine's result file here (batch --keep-result)
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT_S   # blocking runs only; None = wait forever
    retarget: RetargetOptions = RetargetOptions()   # when target is another rig
    shot: int = 0                # import only this shot (1-based) of a result with cuts; 0 = all


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
        # Absolute paths: the engine runs with the extension root as its working folder.
        video = os.path.abspath(bpy.path.abspath(self.request.video)) if self.request.video else ""
        problem = core_engine.check_video_path(video)
        if problem:
            return problem
        try:
            importer.check_target(self._target())
        except apply.ApplyError as e:
            return str(e)
        python = prefs.engine_python(context, self.request.engine_python)
        if python is not None:
            python = python.absolute()
        if python is None or not python.is_file():
            return (f"Engine not found ({python}): use 'Set up engine' in the add-on preferences "
                    "or point it at an engine Python")
        root = prefs.engine_root()
        try:
            self._tmp = tempfile.mkdtemp(prefix="video_mocap_")
        except OSError as e:
            return f"Cannot create a temporary folder: {e}"
        out = os.path.join(os.path.abspath(self._tmp), "result.npz")
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
            return self.apply_file(context, out.result_path)
        finally:
            self.cleanup()

    def apply_file(self, context: bpy.types.Context, path: str) -> tuple[bool, str]:
        """Read, check and apply a result file as one transaction; (ok, message), never an exception."""
        try:
            result = read_result(path)
        except ResultError as e:
            return False, str(e)
        if self.request.keep_result:
            try:
                self._keep(path, os.path.abspath(self.request.keep_result))
            except OSError as e:
                return False, f"could not keep the result file: {e.strerror or e}"
        try:
            # One transaction: on any error the file is exactly as before (transaction.py).
            with SceneTransaction(context):
                obj = importer.import_result(context, result, name=apply.action_name(self.request.video),
                                             target=self._target(), set_scene=self.request.set_scene,
                                             options=self.request.retarget, shot=self.request.shot)
        except (apply.ApplyError, RetargetError) as e:
            return False, str(e)
        except Exception as e:  # noqa: BLE001 - a bug: the scene is rolled back, show it as an error
            log.exception("Video Mocap: importing the result failed")
            return False, f"Import failed ({type(e).__name__}: {e}); the scene was left unchanged"
        self.obj_name = obj.name
        return True, f"Imported {result.frames} frames onto '{obj.name}'"

    @staticmethod
    def _keep(src: str, dst: str) -> None:
        """Copy atomically: a temporary file next to ``dst``, renamed; removed again on any failure."""
        tmp = dst + ".part"
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def run_blocking(self, context: bpy.types.Context, *, timeout: float | None = None) -> tuple[bool, str]:
        err = self.start(context)
        if err:
            self.cleanup()
            return False, err
        assert self.job is not None
        if not self.job.wait(timeout, stall_timeout=self.request.stall_timeout):
            self.job.kill()
            self.job.wait(10)
        return self.finish(context)

    def cleanup(self) -> None:
        if self.job is not None and not self.job.finished:
            self.job.kill()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


