"""File I/O: MRC, STAR, atomic models, JSON and RELION's files.

MRC through mrcfile, STAR through starfile, atomic models through gemmi, JSON, and RELION's
files: the external-reconstruction contract (``relion_extrec``), an auto-refine's files
(``relion``) and the hook's log (``hook_log``).
"""

from cryoprior.io.mrc import read_map, write_map_atomic
from cryoprior.io.relion import (
    IterationFiles,
    ModelInfo,
    OptimiserInfo,
    ParticlesTable,
    SamplingInfo,
    find_iteration_files,
    read_model_star,
    read_optimiser_star,
    read_particles_star,
    read_sampling_star,
)
from cryoprior.io.relion_extrec import (
    ExternalReconstructJob,
    ExternalReconstructName,
    parse_external_reconstruct_name,
    read_external_reconstruct_arrays,
    read_external_reconstruct_job,
)
from cryoprior.io.star import read_star, write_star_atomic

__all__ = [
    "ExternalReconstructJob",
    "ExternalReconstructName",
    "IterationFiles",
    "ModelInfo",
    "OptimiserInfo",
    "ParticlesTable",
    "SamplingInfo",
    "find_iteration_files",
    "parse_external_reconstruct_name",
    "read_external_reconstruct_arrays",
    "read_external_reconstruct_job",
    "read_map",
    "read_model_star",
    "read_optimiser_star",
    "read_particles_star",
    "read_sampling_star",
    "read_star",
    "write_map_atomic",
    "write_star_atomic",
]
