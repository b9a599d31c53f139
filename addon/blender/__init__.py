"""The bpy half of the add-on. Each module has a ``classes`` tuple; registered in order, unregistered
in reverse."""

from __future__ import annotations

from . import cli, export, ops, ops_result, prefs, props, ui

_modules = (props, prefs, ops, ui, ops_result, export, cli)


def register() -> None:
    for m in _modules:
        m.register()


def unregister() -> None:
    for m in reversed(_modules):
        m.unregister()
