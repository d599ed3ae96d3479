"""Command-line programs: ``cryoprior`` and ``cryoprior-extrec``.

The only place that sets up logging, reads the environment or prints.
"""
