"""Command-line programs: ``cryoprior`` and ``cryoprior-extrec`` (the only place that sets up
logging, reads the environment or prints)."""
