"""Options declared once: name, type, default and help; the command line is generated from them.

A config field declares its option with :func:`option` (dataclass field metadata); an attack or a
calibration method declares its parameters as :class:`Option` objects. :func:`add_options` turns
either into ``argparse`` arguments whose ``dest`` is the option's name.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

OPTION_KEY = "option"  # dataclass field metadata key holding the field's Option


@dataclass(frozen=True)
class Option:
    """One user-facing option.

    Attributes
    ----------
    name : the option's name: config key and ``argparse`` dest (``salem_k``)
    help : help text; may name ``{default}`` and the keys of the context :func:`add_options` gets
    default : value when the flag is not given
    type : converts the flag's text (``int``, ``float``, ``str``); ignored for ``store_*`` actions
    flag : the command-line flag (default ``--{name}``)
    action : ``"store_true"`` / ``"store_false"`` for switches (``store_false``: ``--no_x`` sets False)
    choices : allowed values
    nargs : ``"+"`` for a list (kept as a tuple)
    preset : the default comes from the data set's preset attribute of the same name (``"cli"``: only
        the scripts' default does; a config built in code keeps the declared default)
    keyword : constructor keyword the value goes to (attack and calibration parameters)
    minimum, maximum : smallest and largest allowed values (checked by the run before any work)
    above : the value must be strictly greater than this
    at_most_classes : the value may not exceed the target's number of classes (``--salem_k``)
    """

    name: str
    help: str
    default: Any = None
    type: Callable | None = None
    flag: str | None = None
    action: str | None = None
    choices: tuple | None = None
    nargs: str | None = None
    preset: bool | str = False
    keyword: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    at_most_classes: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or f"--{self.name}"


def option(default: Any, help: str, **declaration: Any) -> Any:
    """A dataclass field carrying its :class:`Option` (name filled in from the field)."""
    factory = {"default_factory": (lambda: default)} if isinstance(default, (list, dict)) else {"default": default}
    return dataclasses.field(**factory, metadata={OPTION_KEY: {"help": help, **declaration}})


def field_options(cls) -> list[Option]:
    """The :class:`Option` of every field of dataclass ``cls`` that declares one, in field order."""
    options = []
    for f in dataclasses.fields(cls):
        if OPTION_KEY in f.metadata:
            declaration = dict(f.metadata[OPTION_KEY])
            value_type = declaration.pop("type", None) or _scalar_type(f.default)
            options.append(Option(f.name, default=f.default, type=value_type, **declaration))
    return options


def add_options(parser: Any, options: Iterable[Option], defaults: Mapping[str, Any] | None = None,
                context: Mapping[str, Any] | None = None) -> None:
    """Add one argument per option to ``parser`` (an ``ArgumentParser`` or one of its argument
    groups); ``defaults`` replace declared defaults (presets), ``context`` fills the help texts'
    ``{placeholders}`` besides ``{default}``."""
    defaults, context = dict(defaults or {}), dict(context or {})
    for declared in options:
        default = defaults.get(declared.name, declared.default)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        text = declared.help.format(default=shown, **context)
        if declared.action:
            parser.add_argument(declared.cli_flag, dest=declared.name, action=declared.action, help=text)
            continue
        parser.add_argument(declared.cli_flag, dest=declared.name, type=declared.type,
                            default=None if declared.nargs else default,  # lists: None = not given
                            choices=declared.choices, nargs=declared.nargs, help=text)


def check_value(declared: Option, value: Any, classes: int | None = None) -> None:
    """Raise ValueError naming the flag when ``value`` is outside ``minimum``/``maximum``/``above``,
    not one of ``choices``, or, with ``classes``, above the number of classes for an
    ``at_most_classes`` option. ``None`` (an optional option not given) passes."""
    if value is None:
        return
    if declared.minimum is not None and value < declared.minimum:
        raise ValueError(f"{declared.cli_flag} must be at least {declared.minimum}, got {value}")
    if declared.maximum is not None and value > declared.maximum:
        raise ValueError(f"{declared.cli_flag} must be at most {declared.maximum}, got {value}")
    if declared.above is not None and not value > declared.above:
        raise ValueError(f"{declared.cli_flag} must be greater than {declared.above}, got {value}")
    if declared.choices is not None and value not in declared.choices:
        raise ValueError(f"{declared.cli_flag}: unknown value {value!r}; choose from "
                         f"{', '.join(map(str, declared.choices))}")
    if declared.at_most_classes and classes is not None and value > classes:
        raise ValueError(f"{declared.cli_flag} {value} is larger than the {classes} classes of the "
                         f"target's data; choose 1..{classes}")


def parsed_values(namespace: argparse.Namespace) -> dict[str, Any]:
    """The namespace as option name -> value, lists as tuples."""
    return {name: tuple(value) if isinstance(value, list) else value for name, value in vars(namespace).items()}


def _scalar_type(default: Any) -> Callable | None:
    if isinstance(default, bool) or default is None:
        return None
    if isinstance(default, tuple):
        return type(default[0]) if default else str
    return type(default)
