"""File I/O: MRC through mrcfile, STAR through starfile, RELION's per-iteration files."""

from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.star import read_star, write_star_atomic

__all__ = ["read_map", "write_map_atomic", "read_star", "write_star_atomic"]
