"""The stage seam: every step of the engine is an implementation of one *stage kind*, registered by name.

Kinds and their call signatures (records in :mod:`engine.stages.records`):

- ``keypoints``: a per-frame detector. ``stage(rgb) -> Detection | None``; ``close()`` frees it.
  The pipeline drives the decode loop (progress, cancel, camera-motion meter) and builds the
  :class:`~engine.pose.LandmarkTrack`.
- ``body``: ``stage(track, clip, report) -> BodyMotion`` (local rotations, root, skeleton, shape,
  confidences and the 2D-3D anchors the trajectory needs).
- ``trajectory``: ``stage(track, motion, clip, report) -> Trajectory`` (world root, camera, contacts
  come after).
- ``refine``: ``stage(motion, trajectory, clip, report) -> (motion, trajectory)``, optional steps run in
  order after the trajectory (foot locking, 2D alignment).

Every implementation is a class with ``kind``, ``name``, a frozen ``Config`` dataclass and
``from_config(cfg, device)``; long loops call ``report(i, n)``, which reports progress and raises
:class:`~engine.errors.Cancelled` when the user cancelled. ``describe()`` says which weights it uses
and whether they were found (``python -m engine check --json`` lists it).

Registering a new implementation::

    @register
    class MyBody:
        kind, name = "body", "mine"
        Config = MyConfig
        ...

The built-in implementations live in this package and are registered when it is imported; modules
import their heavy dependencies (torch, mediapipe) lazily, so listing the registry is cheap.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import EngineError

KINDS: tuple[str, ...] = ("keypoints", "body", "trajectory", "refine")
DEFAULTS: dict[str, str] = {"keypoints": "blazepose", "body": "rope", "trajectory": "tp",
                            "refine": "footlock"}

Report = Callable[[int, int], None]
"""``report(i, n)``: step ``i`` of ``n`` done; raises Cancelled when a cancel was requested."""

_REGISTRY: dict[str, dict[str, type]] = {k: {} for k in KINDS}


def register(cls: type) -> type:
    """Class decorator: add a stage implementation to the registry (a later one replaces a namesake)."""
    kind, name = getattr(cls, "kind", None), getattr(cls, "name", None)
    assert kind in KINDS, f"stage kind must be one of {KINDS}, got {kind!r}"
    assert isinstance(name, str) and name.isidentifier(), f"stage name must be an identifier, got {name!r}"
    cfg = getattr(cls, "Config", None)
    assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen, \
        f"{cls.__name__}.Config must be a frozen dataclass"
    assert callable(getattr(cls, "from_config", None)), f"{cls.__name__} needs from_config(cfg, device)"
    _REGISTRY[kind][name] = cls
    return cls


def get(kind: str, name: str) -> type:
    """The implementation ``name`` of ``kind``; a ``usage`` error that lists the valid names otherwise."""
    if kind not in KINDS:
        raise EngineError("usage", f"Unknown stage kind {kind!r}: use one of {', '.join(KINDS)}.")
    impls = _REGISTRY[kind]
    if name not in impls:
        valid = ", ".join(sorted(impls)) or "(none registered)"
        raise EngineError("usage", f"Unknown {kind} stage {name!r}: use one of {valid}.")
    return impls[name]


def available(kind: str | None = None) -> dict[str, list[str]]:
    """Registered names per kind (or of one kind)."""
    kinds = KINDS if kind is None else (kind,)
    return {k: sorted(_REGISTRY[k]) for k in kinds}


def describe_all() -> dict[str, dict[str, Any]]:
    """Per kind and name: the config's defaults and what ``describe()`` says (weights found or not)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        out[kind] = {}
        for name, cls in sorted(_REGISTRY[kind].items()):
            info: dict[str, Any] = {"default": DEFAULTS.get(kind) == name,
                                    "config": config_to_dict(cls.Config())}
            describe = getattr(cls, "describe", None)
            if describe is not None:
                try:
                    info.update(describe())
                except Exception as e:  # noqa: BLE001 - a broken stage must not hide the others
                    info["problem"] = f"{type(e).__name__}: {e}"
            out[kind][name] = info
    return out


# ---- configs: frozen dataclasses that travel with weights, loaded strictly ----------------------
def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type, values: Mapping[str, Any], *, complete: bool = False) -> Any:
    """Build a frozen config from a mapping: unknown keys and values of the wrong type are errors; with
    ``complete`` (configs saved beside weights) a missing key is an error too."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}; valid: {sorted(fields)}")
    missing = sorted(set(fields) - set(values))
    if complete and missing:
        raise ValueError(f"{cls.__name__}: config keys missing {missing}")
    defaults = cls()
    kw: dict[str, Any] = {}
    for k, v in values.items():
        ref = getattr(defaults, k)
        if isinstance(ref, bool) or isinstance(v, bool):
            ok = isinstance(v, bool) and isinstance(ref, bool)
        elif isinstance(ref, (int, float)) and not isinstance(ref, bool):
            ok = isinstance(v, (int, float)) and (isinstance(ref, float) or isinstance(v, int))
            v = type(ref)(v) if ok else v
        elif isinstance(ref, tuple):
            ok = isinstance(v, (list, tuple))
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v) if ok else v
        elif ref is None:
            ok = True
        else:
            ok = isinstance(v, type(ref))
        if not ok:
            raise ValueError(f"{cls.__name__}.{k}: expected {type(ref).__name__}, got {type(v).__name__}")
        kw[k] = v
    return cls(**kw)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_config(cls: type, path: str | Path) -> Any:
    """A config saved beside weights: every key must be present and known."""
    return config_from_dict(cls, json.loads(Path(path).read_text(encoding="utf-8")), complete=True)


def build(kind: str, name: str, device: str = "cpu", overrides: Mapping[str, Any] | None = None) -> Any:
    """Construct a registered stage: its default config with ``overrides`` applied (strictly)."""
    cls = get(kind, name)
    cfg = cls.Config()
    if overrides:
        try:
            cfg = config_from_dict(cls.Config, {**config_to_dict(cfg), **overrides})
        except ValueError as e:
            raise EngineError("usage", f"Bad option for the {kind} stage {name!r}: {e}") from e
    return cls.from_config(cfg, device)


# the built-in implementations register themselves on import (cheap: heavy imports are lazy)
from . import (body_rope, body_solve, keypoints_blazepose, keypoints_tracked, refine_footlock,  # noqa: E402,F401
               trajectory_perspective, trajectory_tp)
