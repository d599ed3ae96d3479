"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

_Command = TypeVar("_Command", bound=Callable[..., Any])

#: The inputs of the commands that read a finished refinement: a job, or its two half-maps.
JobArgument = Annotated[
    Path | None,
    typer.Argument(help="a finished RELION auto-refine: its folder or --o root (Refine3D/job001)"),
]
HalfMap1Option = Annotated[Path | None, typer.Option("--half1", help="half-map 1 (MRC)")]
HalfMap2Option = Annotated[Path | None, typer.Option("--half2", help="half-map 2 (MRC)")]


def error_exit(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; return the Exit to raise."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def setup_logging(verbose: int = 0, *, default_level: int = logging.WARNING) -> None:
    """Log to stderr; -v gives INFO, -vv DEBUG."""
    level = default_level
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_key_values(items: list[str] | None) -> dict[str, Any]:
    """['a=1', 'b=x'] -> {'a': 1, 'b': 'x'}; ValueError for an item without '='."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def print_validation(console, report, *, title: str, json_path, figures) -> None:
    """Print a validation report's summary table, where its metrics and figures were written."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.summary_rows():
        table.add_row(name, value)
    console.print(table)
    console.print(f"metrics: {json_path}")
    console.print("figures: " + ", ".join(str(f) for f in figures))


# --- configuration: command line > file > default ------------------------------------------


def given_on_command_line(ctx: typer.Context) -> dict[str, Any]:
    """Return the parameters given on the command line, by parameter name.

    Left out: those at their default (and any set from the environment), so that a value a
    configuration file gives is not overridden by a default the user never typed.
    """
    # by name: typer's context has its own ParameterSource (a vendored click), not click's
    return {
        name: value
        for name, value in ctx.params.items()
        if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    }


def with_precedence(
    command_line: Mapping[str, Any],
    file: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return every key's value from the command line, else the file, else the defaults."""
    return {**(defaults or {}), **file, **command_line}


def option_flag(name: str) -> str:
    """``box_size`` -> ``--box-size``: the command-line flag of a parameter or field."""
    return "--" + name.replace("_", "-")


def fields_as_options(
    cls: type,
    *,
    help_texts: Mapping[str, str],
    aliases: Mapping[str, str] | None = None,
    off_flags: Mapping[str, str] | None = None,
) -> Callable[[_Command], _Command]:
    """Give a typer command one option per field of the dataclass ``cls``, named as the field.

    The command takes the fields as ``**kwargs``; its signature (what typer reads) gets, after
    its own parameters, a keyword parameter per field: flag :func:`option_flag` of the name
    (``aliases``: a shorter flag accepted as well, listed first), a boolean as
    ``--name/--no-name`` (``off_flags``: another off switch), default None (not given), the
    type of the field without None, the help text ``help_texts[name]``.
    """
    aliases = aliases or {}
    off_flags = off_flags or {}
    hints = typing.get_type_hints(cls)
    options = []
    for field in dataclasses.fields(cls):
        kind = _without_none(hints[field.name])
        flag = option_flag(field.name)
        if kind is bool:
            decls = [f"{flag}/{off_flags.get(field.name, '--no-' + flag[2:])}"]
        else:
            decls = [aliases[field.name], flag] if field.name in aliases else [flag]
        option = typer.Option(*decls, help=help_texts[field.name])
        annotation = typing.cast(Any, Annotated)[kind | None, option]  # built at run time
        options.append(
            inspect.Parameter(
                field.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )

    def decorate(command: _Command) -> _Command:
        own = inspect.signature(command, eval_str=True).parameters.values()
        kept = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
        command.__signature__ = inspect.Signature([*kept, *options])  # type: ignore[attr-defined]
        return command

    return decorate


def _without_none(hint: Any) -> Any:
    """``int | None`` -> ``int``; a type without None as it is."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint
