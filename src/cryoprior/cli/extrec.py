"""``cryoprior-extrec``: the program RELION calls through RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE."""

from __future__ import annotations

import re
import signal
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def extrec(
    ctx: typer.Context,
    job_star: Annotated[
        Path, typer.Argument(help="<root>_external_reconstruct.star (RELION adds it last)")
    ],
    regularizer: Annotated[str, typer.Option(help="none, or module:factory")] = "none",
    when: Annotated[
        str, typer.Option(help="always | never | local-searches | resolution<=X | iteration>=N")
    ] = "local-searches",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="regularizer option KEY=VALUE (repeatable)"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML file with any of these options, keys as the option names "
            '(pair-timeout = 60, when = "always", [option] table); the command line wins'
        ),
    ] = None,
    regularize_final: Annotated[
        bool, typer.Option("--regularize-final", help="also regularize the final joined call")
    ] = False,
    pair_timeout: Annotated[
        float, typer.Option(help="seconds half 1 waits for half 2 (joint regularizers)")
    ] = 300.0,
    timeout: Annotated[
        float, typer.Option(help="seconds allowed for regularization before falling back")
    ] = 1800.0,
    mask: Annotated[Path | None, typer.Option(help="solvent mask for the regularizer")] = None,
    no_map: Annotated[
        bool, typer.Option("--no-map", help="plain map without the MAP term (as --no_map)")
    ] = False,
    skip_gridding: Annotated[
        bool, typer.Option("--skip-gridding", help="no iterative gridding (as --skip_gridding)")
    ] = False,
    guard: Annotated[
        bool | None,
        typer.Option(
            "--guard/--no-guard",
            help="limit the regularized map to what the data hold, greyscale fit to the plain "
            "map (default: on for learned priors; --guard-method)",
        ),
    ] = None,
    guard_fsc_threshold: Annotated[
        float,
        typer.Option(
            help="guard: keep the regularized map up to the shell where the FSC falls below this"
        ),
    ] = 1.0 / 7.0,
    guard_edge_shells: Annotated[
        float, typer.Option(help="guard: width of the cosine edge, in Fourier shells")
    ] = 3.0,
    guard_method: Annotated[
        str,
        typer.Option(
            help="guard: bounded (v2, the default: beyond the FSC=1/7 shell the regularized "
            "map, each shell capped at sqrt(FSC) x the plain map's amplitude, nothing where "
            "the FSC is insignificant; docs/guard.md) or trailing (v1: the plain map there)"
        ),
    ] = "bounded",
    guard_cross_half: Annotated[
        bool | None,
        typer.Option(
            "--guard-cross-half/--no-guard-cross-half",
            help="guard v2 (bounded): also end the support where this half's regularized map "
            "stops correlating with the other half's plain map (the halves meet as for "
            "sidesplitter; docs/guard.md). Default: on with guard v2",
        ),
    ] = None,
    write_fsc_star: Annotated[
        bool,
        typer.Option(
            "--write-fsc-star",
            help="hand RELION a SIDESPLITTER-wrapper style FSC (raises its resolution estimate; off by default)",
        ),
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            help="auto | cpu | cuda | cuda:N: where a learned regularizer (prior) runs; auto: "
            "a GPU when torch sees one, else the CPU"
        ),
    ] = "auto",
    log_file: Annotated[
        Path | None, typer.Option(help="JSON-lines log (default: beside RELION's output)")
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Reconstruct RELION's half-map, regularize it when the schedule says so, write it back.

    Example, for RELION:

        export RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE="cryoprior-extrec --regularizer none"
        mpirun -np 3 -x RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE relion_refine_mpi ... --external_reconstruct

    Exit 0 whenever a map was written (falling back to the plain reconstruction if the
    regularizer fails, in any way); exit 1 with a one-line message only if no map could be
    made or written; exit 2 for bad options. Precedence: command line, then --config, then
    the defaults.
    """
    from cryoprior.cli._common import setup_logging

    setup_logging(verbose)
    _exit_cleanly_on_signals()
    from cryoprior.errors import InputFileError
    from cryoprior.extrec.protocol import ResultWriteError, one_line
    from cryoprior.extrec.run import run_extrec

    def fail(message: object, code: int) -> typer.Exit:
        print(f"cryoprior-extrec: error: {one_line(message, limit=2000)}", file=sys.stderr)
        return typer.Exit(code)

    from cryoprior.cli._common import given_on_command_line

    try:
        cfg = build_config(given_on_command_line(ctx), config)
    except InputFileError as exc:
        raise fail(exc, 2) from None
    except (TypeError, ValueError) as exc:  # bad options: usage error, before any work
        raise fail(exc, 2) from None
    try:
        run_extrec(job_star, cfg)
    except (InputFileError, ResultWriteError) as exc:
        raise fail(exc, 1) from None
    except MemoryError:
        raise fail(f"{job_star}: out of memory while reconstructing", 1) from None
    except Exception as exc:  # anything else before the plain map: one line, no traceback
        raise fail(f"{job_star}: {type(exc).__name__}: {exc}", 1) from None


def _exit_cleanly_on_signals() -> None:
    """Make SIGTERM/SIGHUP (a queue system, a closed terminal) end the program through Python.

    An atomic write in progress then removes its temporary file instead of leaving it behind.
    """

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


#: TOML keys: the option names as on the command line (``pair-timeout``; ``pair_timeout``
#: is accepted too), with the type each must have. ``option`` is a table of KEY = VALUE.
_KEYS: dict[str, tuple[type, ...]] = {
    "regularizer": (str,),
    "when": (str,),
    "option": (dict,),
    "regularize-final": (bool,),
    "pair-timeout": (int, float),
    "timeout": (int, float),
    "mask": (str,),
    "no-map": (bool,),
    "skip-gridding": (bool,),
    "guard": (bool,),
    "guard-fsc-threshold": (int, float),
    "guard-edge-shells": (int, float),
    "guard-method": (str,),
    "guard-cross-half": (bool,),
    "write-fsc-star": (bool,),
    "device": (str,),
    "log-file": (str,),
}

_DEFAULTS: dict[str, object] = {
    "regularizer": "none",
    "when": "local-searches",
    "option": {},
    "regularize-final": False,
    "pair-timeout": 300.0,
    "timeout": 1800.0,
    "mask": None,
    "no-map": False,
    "skip-gridding": False,
    "guard": None,
    # guard-fsc-threshold, -edge-shells and -method: regularizers.guard.HOOK_GUARD's
    "guard-cross-half": None,  # on with guard v2 (bounded), off with v1
    "write-fsc-star": False,
    "device": "auto",
    "log-file": None,
}


def read_config_file(path: Path) -> dict[str, object]:
    """Return the TOML file's options, keys normalized to the command-line names and type-checked.

    Raises InputFileError (naming the file) for an unreadable file, an unknown key or a
    value of the wrong type.
    """
    from cryoprior.errors import InputFileError

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(path, f"not a readable TOML file ({exc})") from exc
    out: dict[str, object] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("_", "-")
        if key == "options":
            key = "option"
        if key not in _KEYS:
            raise InputFileError(
                path, f"unknown key {raw_key!r}; use the option names: {', '.join(_KEYS)}"
            )
        types = _KEYS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise InputFileError(path, f"{raw_key} must be a {wanted}, not {value!r}")
        out[key] = value
    return out


def get_table(file_options: dict[str, object]) -> dict[str, Any]:
    """Return a copy of the file's ``option`` table (regularizer options), empty if none."""
    table = file_options.get("option", {})
    return dict(table) if isinstance(table, dict) else {}


_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def _device_option(device: str, regularizer: str, reg_options: dict[str, Any]) -> None:
    """Put ``--device`` into the regularizer's options (unless auto); ValueError when bad.

    Checked by its form only: this process never imports torch. A GPU that is not there
    makes the regularizer fail in its own process, and RELION gets the plain map.
    """
    from cryoprior.regularizers.registry import BUILTIN_REGULARIZERS

    device = device.strip().lower()
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
    if device == "auto":
        return
    if regularizer in BUILTIN_REGULARIZERS and regularizer != "prior":
        raise ValueError(
            f"--device applies to a learned regularizer (prior, or module:factory taking a "
            f"device option), not {regularizer!r}"
        )
    given = reg_options.get("device")
    if given not in (None, "", "auto") and str(given) != device:
        raise ValueError(f"--device {device} and --option device={given} disagree")
    reg_options["device"] = device


def build_config(given: dict[str, object], config_path: Path | None):
    """ExtrecConfig from the options given on the command line, then the file, then defaults.

    ``given`` maps parameter names (``pair_timeout``) to values for options that were
    given on the command line only. Raises ValueError for bad values, InputFileError for a
    bad file.
    """
    import math

    from cryoprior.cli._common import parse_key_values, with_precedence
    from cryoprior.extrec.run import ExtrecConfig
    from cryoprior.extrec.schedule import parse_schedule
    from cryoprior.reconstruct.relion_map import ReconstructionOptions
    from cryoprior.regularizers.guard import HOOK_GUARD, GuardSettings

    file_options = read_config_file(config_path) if config_path is not None else {}
    command_line = {k.replace("_", "-"): v for k, v in given.items()}
    defaults = {
        **_DEFAULTS,
        "guard-fsc-threshold": HOOK_GUARD.fsc_threshold,
        "guard-edge-shells": HOOK_GUARD.edge_width_shells,
        "guard-method": HOOK_GUARD.method,
    }
    options = with_precedence(command_line, file_options, defaults)

    def get(key: str) -> Any:
        return options[key]

    reg_options: dict[str, Any] = dict(get_table(file_options))
    reg_options.update(parse_key_values(command_line.get("option")))  # type: ignore[arg-type]
    for key in ("timeout", "pair-timeout"):
        value = float(get(key))
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"--{key} must be a number of seconds >= 0, not {value:g}")
    _device_option(str(get("device")), str(get("regularizer")), reg_options)
    bounded = str(get("guard-method")) == "bounded"
    cross_half = get("guard-cross-half")
    if cross_half and not bounded:
        raise ValueError("--guard-cross-half needs --guard-method bounded (guard v2)")
    if cross_half is None:  # the default guard's, with guard v2 only
        cross_half = bounded and HOOK_GUARD.cross_half_support
    mask = get("mask")
    log_file = get("log-file")
    return ExtrecConfig(
        regularizer=str(get("regularizer")),
        regularizer_options=reg_options,
        schedule=parse_schedule(str(get("when"))),
        regularize_final=bool(get("regularize-final")),
        pair_timeout_seconds=float(get("pair-timeout")),
        regularizer_timeout_seconds=float(get("timeout")),
        mask_path=str(mask) if mask else None,
        reconstruction=ReconstructionOptions(
            do_map=not get("no-map"), skip_gridding=bool(get("skip-gridding"))
        ),
        log_path=str(log_file) if log_file else None,
        guard=get("guard"),
        guard_settings=GuardSettings(
            fsc_threshold=float(get("guard-fsc-threshold")),
            edge_width_shells=float(get("guard-edge-shells")),
            method=str(get("guard-method")),
            cross_half_support=bool(cross_half),
        ),
        write_fsc_star=bool(get("write-fsc-star")),
    )


def main() -> None:
    """Run ``cryoprior-extrec`` (the console-script entry point)."""
    app()


if __name__ == "__main__":
    main()
