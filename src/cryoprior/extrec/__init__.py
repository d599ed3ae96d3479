"""The program RELION runs at every iteration: ``cryoprior-extrec``."""

from cryoprior.extrec.run import ExtrecConfig, ExtrecOutcome, run_extrec
from cryoprior.extrec.schedule import Schedule, parse_schedule

__all__ = ["ExtrecConfig", "ExtrecOutcome", "Schedule", "parse_schedule", "run_extrec"]
