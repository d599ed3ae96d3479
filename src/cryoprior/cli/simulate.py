"""``cryoprior simulate``: a simulated single-particle dataset from an atomic model or a map."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from cryoprior.cli._common import fields_as_options, with_precedence
from cryoprior.simulate.config import SimulationConfig, config_from_dict

__all__ = ["simulate"]

# Every SimulationConfig field is an option named as the field (box_size: --box-size; the same
# key in a --config file); these are the help texts, the shorter flags of earlier versions
# (accepted too, and named in messages) and the off switches of two booleans.
_HELP = {
    "model": "shipped model (beta-galactosidase, proteasome, gltph) or a PDB/mmCIF file",
    "map_path": "project this MRC map instead of a model",
    "box_size": "box size in pixels (default: fits)",
    "voxel_size_angstrom": "pixel size, A (default 1)",
    "b_factor_angstrom2": "give every atom this B-factor, A^2 (default: model's)",
    "density_oversampling": "density grid oversampling (2)",
    "remove_waters": "drop waters",
    "belt_width_angstrom": "wrap a detergent-micelle-like belt this wide (A) around the model's "
    "transmembrane band, found from its residues (0: none)",
    "belt_relative_density": "the belt's density relative to the protein's (0.4)",
    "belt_roughness_angstrom": "random modulation of the belt's outline, A (3)",
    "orientations": "uniform | grid | star (default uniform)",
    "n_particles": "number of uniform random views (1000)",
    "angular_step_degrees": "grid step, degrees (1.5 -> 18,338 views)",
    "angles_star": "STAR file with the poses",
    "cone_overrepresentation": "over-representation of the tilt cone (1 = none)",
    "cone_tilt_min_degrees": "tilt cone start, degrees",
    "cone_tilt_max_degrees": "tilt cone end, degrees (40)",
    "shift_sd_angstrom": "SD of random origins, A",
    "ctf": "apply a CTF",
    "defocus_min_angstrom": "defocus range start, A",
    "defocus_max_angstrom": "defocus range end, A",
    "astigmatism_angstrom": "defocus U - V, A",
    "voltage_kv": "kV (300)",
    "spherical_aberration_mm": "spherical aberration, mm (2.7)",
    "amplitude_contrast": "(0.1)",
    "envelope_b_factor_angstrom2": "B of the images' envelope after the CTF, A^2 (0: none)",
    "lowpass_resolution_angstrom": "low-pass the projections at this resolution, A",
    "lowpass_width_frequency": "raised-cosine width, frequency normalised to 0.5",
    "noise_sd": "Gaussian noise SD (image units)",
    "snr": "target SNR instead of --noise-sd",
    "n_pure_noise": "number of pure-noise particles to mix in",
    "pure_noise_only": "every particle pure noise",
    "reference_lowpass_angstrom": "initial reference resolution, A (20)",
    "seed": "random seed (0)",
    "batch_size": "particles per batch (auto)",
    "particles_per_stack": "particles per .mrcs file (10000)",
    "padding_factor": "projector padding factor (2)",
    "device": "auto | cpu | cuda | cuda:N",
    "backend": "projector: auto | eager | compiled",
}
_SHORT_FLAGS = {
    "map_path": "--map",
    "box_size": "--box",
    "voxel_size_angstrom": "--voxel-size",
    "b_factor_angstrom2": "--b-factor",
    "density_oversampling": "--oversampling",
    "belt_width_angstrom": "--belt-width",
    "belt_roughness_angstrom": "--belt-roughness",
    "n_particles": "--particles",
    "angular_step_degrees": "--angular-step",
    "cone_overrepresentation": "--cone-factor",
    "cone_tilt_min_degrees": "--cone-tilt-min",
    "cone_tilt_max_degrees": "--cone-tilt-max",
    "shift_sd_angstrom": "--shift-sd",
    "defocus_min_angstrom": "--defocus-min",
    "defocus_max_angstrom": "--defocus-max",
    "astigmatism_angstrom": "--astigmatism",
    "voltage_kv": "--voltage",
    "spherical_aberration_mm": "--cs",
    "envelope_b_factor_angstrom2": "--envelope-b",
    "lowpass_resolution_angstrom": "--lowpass",
    "lowpass_width_frequency": "--lowpass-width",
    "n_pure_noise": "--pure-noise",
    "reference_lowpass_angstrom": "--reference-lowpass",
    "padding_factor": "--padding",
}
_OFF_FLAGS = {"remove_waters": "--keep-waters", "pure_noise_only": "--with-signal"}
_CONFIG_HELP = (
    "TOML/JSON file of parameters, keys as the field names (box_size = 64; a simulation.json "
    "too); options given here win"
)


@fields_as_options(SimulationConfig, help_texts=_HELP, aliases=_SHORT_FLAGS, off_flags=_OFF_FLAGS)
def simulate(
    ctx: typer.Context,
    output_dir: Annotated[Path, typer.Argument(help="dataset folder to create")],
    config: Annotated[Path | None, typer.Option(help=_CONFIG_HELP)] = None,
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
    **fields: Any,
) -> None:
    """Simulate a particle dataset from an atomic model or a map, with its ground truth.

    Images are made in RELION's conventions (as relion_project). Writes
    OUTPUT_DIR/particles.star (no poses), Particles/*.mrcs, ground_truth.star (true poses),
    true_map.mrc, initial_reference.mrc and simulation.json (every parameter and the seed).
    Run RELION inside OUTPUT_DIR.

    Every parameter is an option named as its field in simulation.json (--box-size, also
    --box); a --config file gives any of them with the same names, and the command line wins
    over the file, the file over the defaults.

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

    from cryoprior.cli._common import given_on_command_line, setup_logging
    from cryoprior.errors import InputFileError
    from cryoprior.simulate.dataset import simulate_dataset

    setup_logging(verbose)
    console = Console(stderr=True)
    try:
        cfg = _config(given_on_command_line(ctx), config)
    except (InputFileError, ValueError, TypeError) as exc:
        _error(console, _with_flags(str(exc)))
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
        _error(console, _with_flags(str(exc)))
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


def _config(given: dict[str, Any], config_file: Path | None) -> SimulationConfig:
    """Return the configuration: the command line's fields, else the file's, else the defaults.

    The file (TOML/JSON, keys as the fields) is read and checked on its own first, so that an
    unknown key or a bad value is named with the file.
    """
    from cryoprior.simulate.dataset import load_config

    command_line = {
        name: str(value) if isinstance(value, Path) else value
        for name, value in given.items()
        if name in _HELP
    }
    file = dataclasses.asdict(load_config(config_file)) if config_file is not None else {}
    return config_from_dict(with_precedence(command_line, file))


def _with_flags(message: str) -> str:
    """Add the short flag to each configuration field a message names.

    'voxel_size_angstrom must ...' -> 'voxel_size_angstrom (--voxel-size) must ...'.
    """
    import re

    for field, flag in _SHORT_FLAGS.items():
        message = re.sub(rf"(?<![\w/.-]){field}(?![\w/.?-]| \()", f"{field} ({flag})", message)
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
