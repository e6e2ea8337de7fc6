"""`tao-server`'s flags, made from the settings models: a setting with a flag (settings.py, a backend's
own settings) is a flag here, with its description and default as its help, and nothing else to write.

The flags read into Settings' own keyword arguments (`overrides`); what is not given is left to
the TAO_* variables and the defaults, which Settings reads itself.
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from tao_server import __version__
from tao_server.settings import BACKEND_SETTINGS, Setting, settings_catalog

_OFF = object()  # what a --no-X flag stores: the setting turned off (None, or False for a yes/no setting)


def parser() -> argparse.ArgumentParser:
    """`tao-server`'s parser: one flag per setting that has one, in the order the settings are declared."""
    made = argparse.ArgumentParser(
        prog="tao-server", description="The TAO launcher daemon: runs TAO tasks in Docker for the `tao` CLI and HTTP clients."
    )
    for setting in settings_catalog():
        if setting.flag is not None:
            made.add_argument(setting.flag, dest=setting.key, **_argument(setting))
        if setting.negative is not None:
            made.add_argument(setting.negative, dest=setting.key, action="store_const", const=_OFF, help=setting.negative_help)
    made.add_argument("--version", action="version", version=f"tao-server {__version__}")
    return made


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as Settings(**overrides) takes them; a backend's flags as its settings model, built here
    (so that its TAO_* variables still count for the flags not given)."""
    given: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {section: {} for section in BACKEND_SETTINGS}
    for key, value in vars(args).items():
        if value is None:
            continue
        if value is _OFF:
            value = False if key == "dashboard" else None
        section, _, name = key.rpartition(".")
        (nested[section] if section else given)[name] = value
    for section, values in nested.items():
        if values:
            given[section] = BACKEND_SETTINGS[section](**values)
    return given


def _argument(setting: Setting) -> dict[str, Any]:
    """add_argument's keywords for the setting: its type, choices or action, its metavar and its help."""
    if setting.hidden:
        keywords: dict[str, Any] = {"help": argparse.SUPPRESS}
    else:
        keywords = {"help": f"{setting.description} (default: {setting.default}; ${setting.env})"}
    kind = _plain_type(setting.annotation)
    if kind is bool:
        return {**keywords, "action": "store_true", "default": None}
    if setting.choices is not None:
        return {**keywords, "choices": list(setting.choices)}
    return {
        **keywords,
        "type": kind if kind in (int, float, Path) else str,
        "metavar": setting.flag.lstrip("-").upper().replace("-", "_") if setting.flag else None,
    }


def _plain_type(annotation: Any) -> Any:
    """int for `int`, Path for `Path | None`: the type a flag's text is read as."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kinds[0] if len(kinds) == 1 else str
    return annotation
