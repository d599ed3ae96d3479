"""The configuration pattern of the command line (``cryoprior.cli._common``): options named as a
dataclass's fields, and the precedence command line > file > default, on a small dataclass and a
throwaway typer command (no simulation, no files but a TOML written here)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.testing import CliRunner

from cryoprior.cli._common import (  # noqa: PLC2701 (the cli package's shared helpers, tested here)
    fields_as_options,
    given_on_command_line,
    option_flag,
    with_precedence,
)


@dataclass(frozen=True)
class _Settings:
    box_size: int = 32
    voxel_size_angstrom: float | None = None
    name: str = "a"
    ctf: bool = False
    keep_waters: bool = True


def _command(seen: list[dict[str, Any]]):
    @fields_as_options(
        _Settings,
        help_texts={f.name: f"the {f.name}" for f in dataclasses.fields(_Settings)},
        aliases={"box_size": "--box"},
        off_flags={"keep_waters": "--remove-waters"},
    )
    def command(
        ctx: typer.Context,
        config: Annotated[Path | None, typer.Option()] = None,
        **fields: Any,
    ) -> None:
        file = tomllib.loads(config.read_text()) if config else {}
        defaults = dataclasses.asdict(_Settings())
        given = {k: v for k, v in given_on_command_line(ctx).items() if k in defaults}
        seen.append(with_precedence(given, file, defaults))
        print(json.dumps(sorted(fields)))

    app = typer.Typer()
    app.command()(command)
    return app


def _run(tmp_path: Path, *args: str, toml: str | None = None) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    argv = list(args)
    if toml is not None:
        (tmp_path / "c.toml").write_text(toml)
        argv += ["--config", str(tmp_path / "c.toml")]
    result = CliRunner().invoke(_command(seen), argv)
    assert result.exit_code == 0, result.output
    # the command receives every field as a keyword (None when not given)
    assert json.loads(result.output) == sorted(f.name for f in dataclasses.fields(_Settings))
    return seen[0]


def test_the_command_line_wins_over_the_file_which_wins_over_the_defaults(tmp_path):
    toml = 'box_size = 64\nname = "file"\nctf = true\n'
    assert _run(tmp_path) == dataclasses.asdict(_Settings())
    from_file = _run(tmp_path, toml=toml)
    assert (from_file["box_size"], from_file["name"], from_file["ctf"]) == (64, "file", True)
    assert from_file["voxel_size_angstrom"] is None  # neither: the default
    both = _run(tmp_path, "--name", "cli", "--voxel-size-angstrom", "2.5", toml=toml)
    assert (both["name"], both["box_size"], both["voxel_size_angstrom"]) == ("cli", 64, 2.5)
    # a value equal to the default, typed on the command line, still beats the file
    typed_default = _run(tmp_path, "--box-size", "32", "--no-ctf", toml=toml)
    assert (typed_default["box_size"], typed_default["ctf"]) == (32, False)


def test_flags_are_the_field_names_with_an_alias_and_an_off_switch(tmp_path):
    assert option_flag("voxel_size_angstrom") == "--voxel-size-angstrom"
    assert _run(tmp_path, "--box", "48")["box_size"] == 48
    assert _run(tmp_path, "--box-size", "48")["box_size"] == 48
    assert _run(tmp_path, "--remove-waters")["keep_waters"] is False
    assert _run(tmp_path, "--ctf")["ctf"] is True
    bad = CliRunner().invoke(_command([]), ["--box", "x"])
    assert bad.exit_code == 2 and "--box" in bad.output


def test_with_precedence_on_plain_mappings():
    assert with_precedence({"a": 1}, {"a": 2, "b": 2}, {"a": 3, "b": 3, "c": 3}) == {
        "a": 1,
        "b": 2,
        "c": 3,
    }
    assert with_precedence({}, {"x": None}) == {"x": None}  # a file's null is a value
