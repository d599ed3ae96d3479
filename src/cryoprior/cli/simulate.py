"""``cryoprior simulate``: a simulated single-particle dataset from an atomic model or a map."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["options_to_config", "simulate"]

# CLI option (parameter name) -> SimulationConfig field
_FIELDS = {
    "model": "model",
    "map_path": "map_path",
    "box": "box_size",
    "voxel_size": "voxel_size_angstrom",
    "b_factor": "b_factor_angstrom2",
    "oversampling": "density_oversampling",
    "remove_waters": "remove_waters",
    "belt_width": "belt_width_angstrom",
    "belt_relative_density": "belt_relative_density",
    "belt_roughness": "belt_roughness_angstrom",
    "orientations": "orientations",
    "particles": "n_particles",
    "angular_step": "angular_step_degrees",
    "angles_star": "angles_star",
    "cone_factor": "cone_overrepresentation",
    "cone_tilt_min": "cone_tilt_min_degrees",
    "cone_tilt_max": "cone_tilt_max_degrees",
    "shift_sd": "shift_sd_angstrom",
    "ctf": "ctf",
    "defocus_min": "defocus_min_angstrom",
    "defocus_max": "defocus_max_angstrom",
    "astigmatism": "astigmatism_angstrom",
    "voltage": "voltage_kv",
    "cs": "spherical_aberration_mm",
    "amplitude_contrast": "amplitude_contrast",
    "lowpass": "lowpass_resolution_angstrom",
    "lowpass_width": "lowpass_width_frequency",
    "noise_sd": "noise_sd",
    "snr": "snr",
    "pure_noise": "n_pure_noise",
    "pure_noise_only": "pure_noise_only",
    "reference_lowpass": "reference_lowpass_angstrom",
    "seed": "seed",
    "batch_size": "batch_size",
    "particles_per_stack": "particles_per_stack",
    "padding": "padding_factor",
    "device": "device",
    "backend": "backend",
}


def options_to_config(options: dict[str, Any], config_file: Path | None = None):
    """Build a SimulationConfig from a config file and the command-line options.

    The config file is TOML/JSON with field names as keys; the command-line options that were
    given (not None) override it.
    """
    from cryoprior.simulate.dataset import config_from_dict, load_config

    base = dataclasses.asdict(load_config(config_file)) if config_file is not None else {}
    for option, value in options.items():
        if value is not None:
            base[_FIELDS[option]] = str(value) if isinstance(value, Path) else value
    return config_from_dict(base)


def simulate(
    output_dir: Annotated[Path, typer.Argument(help="dataset folder to create")],
    config: Annotated[
        Path | None,
        typer.Option(help="TOML/JSON file of parameters (field names; options given here win)"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="shipped model (beta-galactosidase, proteasome, gltph) or a PDB/mmCIF file"
        ),
    ] = None,
    map_path: Annotated[
        Path | None, typer.Option("--map", help="project this MRC map instead of a model")
    ] = None,
    box: Annotated[int | None, typer.Option(help="box size in pixels (default: fits)")] = None,
    voxel_size: Annotated[float | None, typer.Option(help="pixel size, A (default 1)")] = None,
    b_factor: Annotated[
        float | None, typer.Option(help="give every atom this B-factor, A^2 (default: model's)")
    ] = None,
    oversampling: Annotated[int | None, typer.Option(help="density grid oversampling (2)")] = None,
    remove_waters: Annotated[
        bool | None, typer.Option("--remove-waters/--keep-waters", help="drop waters")
    ] = None,
    belt_width: Annotated[
        float | None,
        typer.Option(
            help="wrap a detergent-micelle-like belt this wide (A) around the model's "
            "transmembrane band, found from its residues (0: none)"
        ),
    ] = None,
    belt_relative_density: Annotated[
        float | None, typer.Option(help="the belt's density relative to the protein's (0.4)")
    ] = None,
    belt_roughness: Annotated[
        float | None, typer.Option(help="random modulation of the belt's outline, A (3)")
    ] = None,
    orientations: Annotated[
        str | None, typer.Option(help="uniform | grid | star (default uniform)")
    ] = None,
    particles: Annotated[
        int | None, typer.Option(help="number of uniform random views (1000)")
    ] = None,
    angular_step: Annotated[
        float | None, typer.Option(help="grid step, degrees (1.5 -> 18,338 views)")
    ] = None,
    angles_star: Annotated[Path | None, typer.Option(help="STAR file with the poses")] = None,
    cone_factor: Annotated[
        float | None, typer.Option(help="over-representation of the tilt cone (1 = none)")
    ] = None,
    cone_tilt_min: Annotated[float | None, typer.Option(help="tilt cone start, degrees")] = None,
    cone_tilt_max: Annotated[float | None, typer.Option(help="tilt cone end, degrees (40)")] = None,
    shift_sd: Annotated[float | None, typer.Option(help="SD of random origins, A")] = None,
    ctf: Annotated[bool | None, typer.Option("--ctf/--no-ctf", help="apply a CTF")] = None,
    defocus_min: Annotated[float | None, typer.Option(help="defocus range start, A")] = None,
    defocus_max: Annotated[float | None, typer.Option(help="defocus range end, A")] = None,
    astigmatism: Annotated[float | None, typer.Option(help="defocus U - V, A")] = None,
    voltage: Annotated[float | None, typer.Option(help="kV (300)")] = None,
    cs: Annotated[float | None, typer.Option(help="spherical aberration, mm (2.7)")] = None,
    amplitude_contrast: Annotated[float | None, typer.Option(help="(0.1)")] = None,
    lowpass: Annotated[
        float | None, typer.Option(help="low-pass the projections at this resolution, A")
    ] = None,
    lowpass_width: Annotated[
        float | None, typer.Option(help="raised-cosine width, frequency normalised to 0.5")
    ] = None,
    noise_sd: Annotated[float | None, typer.Option(help="Gaussian noise SD (image units)")] = None,
    snr: Annotated[float | None, typer.Option(help="target SNR instead of --noise-sd")] = None,
    pure_noise: Annotated[
        int | None, typer.Option(help="number of pure-noise particles to mix in")
    ] = None,
    pure_noise_only: Annotated[
        bool | None,
        typer.Option("--pure-noise-only/--with-signal", help="every particle pure noise"),
    ] = None,
    reference_lowpass: Annotated[
        float | None, typer.Option(help="initial reference resolution, A (20)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (0)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="particles per batch (auto)")] = None,
    particles_per_stack: Annotated[
        int | None, typer.Option(help="particles per .mrcs file (10000)")
    ] = None,
    padding: Annotated[float | None, typer.Option(help="projector padding factor (2)")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N")] = None,
    backend: Annotated[str | None, typer.Option(help="projector: auto | eager | compiled")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace a dataset already in OUTPUT_DIR")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="skip the up-front check of free memory and disk against the estimated need",
        ),
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Simulate a particle dataset from an atomic model or a map, with its ground truth.

    Images are made in RELION's conventions (as relion_project). Writes OUTPUT_DIR/particles.star (no poses), Particles/*.mrcs, ground_truth.star (true
    poses), true_map.mrc, initial_reference.mrc and simulation.json (every parameter and the
    seed). Run RELION inside OUTPUT_DIR.

    Before writing anything, the estimated peak memory and disk use are compared with what is
    free, and a dataset that does not fit is refused (--force skips this check). A failed or
    interrupted run leaves no temporary file; simulation.json is written last.

    Example: cryoprior simulate sim_betagal --model beta-galactosidase --voxel-size 4 --box 64
    --orientations grid --angular-step 6 --noise-sd 5 --ctf

    The paper's cases: --model beta-galactosidase --voxel-size 0.637 --box 338 --orientations
    grid --angular-step 1.5 --noise-sd 150 (add --lowpass 5 for the cut-off series), and
    --model proteasome --voxel-size 1 --box 256 --orientations grid --angular-step 1.5
    --cone-factor 3.8401 --noise-sd 150 (24,359 views, tilt 0-40 over-represented).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    from rich.table import Table

    from cryoprior.cli._common import setup_logging
    from cryoprior.errors import InputFileError
    from cryoprior.simulate.dataset import simulate_dataset

    setup_logging(verbose)
    console = Console(stderr=True)
    options = {name: value for name, value in locals().items() if name in _FIELDS}
    try:
        cfg = options_to_config(options, config)
    except (InputFileError, ValueError, TypeError) as exc:
        _error(console, _with_options(str(exc), options))
        raise typer.Exit(2) from None

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    previous_sigterm = _interrupt_on_sigterm()
    try:
        with Progress(
            *columns, console=console, transient=True, disable=not console.is_terminal
        ) as bar:
            task = bar.add_task("simulating particles", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = simulate_dataset(
                cfg, output_dir, overwrite=overwrite, progress=progress, force=force
            )
    except (InputFileError, FileExistsError, FileNotFoundError, ValueError) as exc:
        _error(console, _with_options(str(exc), options))
        raise typer.Exit(1) from None
    except OSError as exc:  # cannot write: read-only folder, disk full, ...
        where = exc.filename if exc.filename else output_dir
        _error(console, f"{where}: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    except (MemoryError, RuntimeError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, RuntimeError) and "memory" not in text.lower():
            raise  # a bug, not a resource problem: keep the traceback
        _error(
            console,
            f"{output_dir}: out of memory while simulating ({text}): use a smaller box or "
            "fewer particles per batch (--batch-size)",
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _error(console, f"{output_dir}: interrupted; the dataset is incomplete", "interrupted")
        raise typer.Exit(130) from None
    finally:
        _restore_sigterm(previous_sigterm)

    table = Table(title=f"simulated dataset in {result.output_dir}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("particles (signal + pure noise)", f"{result.n_signal} + {result.n_pure_noise}")
    table.add_row("box, pixel size", f"{result.box_size}, {result.voxel_size_angstrom:g} A")
    table.add_row("noise SD / signal SD", f"{result.noise_sd:.4g} / {result.signal_sd:.4g}")
    table.add_row("stacks", str(len(result.stacks)))
    table.add_row("symmetry of the model", result.symmetry or "unknown")
    console.print(table)
    console.print(
        f"particles: {result.particles_star}\nground truth: {result.ground_truth_star}\n"
        f"reference: {result.initial_reference}\nrecord: {result.record_json}"
    )


def _error(console, message: str, label: str = "error") -> None:
    """One line on stderr (the message is not read as rich markup, and not wrapped)."""
    from rich.markup import escape

    console.print(f"[red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _with_options(message: str, options: dict[str, Any]) -> str:
    """Add the command-line option to each configuration field a message names.

    'voxel_size_angstrom must ...' -> 'voxel_size_angstrom (--voxel-size) must ...'.
    """
    import re

    for option, field in _FIELDS.items():
        if field == option:  # the same word: nothing to add (and it may be part of a path)
            continue
        flag = "--map" if option == "map_path" else "--" + option.replace("_", "-")
        message = re.sub(rf"(?<![\w/.-]){field}(?![\w/.-]| \()", f"{field} ({flag})", message)
    return message


def _interrupt_on_sigterm():
    """Make SIGTERM raise KeyboardInterrupt (so temporary files are removed).

    Returns the previous handler, or None when not in the main thread.
    """
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None


def _restore_sigterm(previous) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
