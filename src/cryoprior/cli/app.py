"""``cryoprior``: the user-facing command line."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


def _register_commands() -> None:
    """Commands that live in their own modules (each a thin shell over one library call)."""
    from cryoprior.cli.enhance import enhance
    from cryoprior.cli.experiments import benchmark, demo, refine, report
    from cryoprior.cli.simulate import simulate
    from cryoprior.cli.train_prior import train_prior
    from cryoprior.cli.validate import validate

    app.command()(demo)
    app.command()(simulate)
    app.command()(refine)
    app.command()(validate)
    app.command()(enhance)
    app.command()(benchmark)
    app.command()(report)
    app.command("train-prior")(train_prior)


_register_commands()


@app.command()
def version() -> None:
    """Print the package version."""
    from cryoprior import __version__

    print(__version__)


def main() -> None:
    """Run the ``cryoprior`` command line (the console-script entry point)."""
    app()


if __name__ == "__main__":
    main()
