"""searcher: faceted search over the Spack build-cache listing."""

import os

__version__ = "0.2.0"

# searcher does no linear algebra, and numpy's OpenBLAS starts a thread when imported: one
# BLAS thread per process, so `searcher serve` forks its workers from a process with one
# thread (a fork copies no other thread; Python 3.12+ warns when there are others). Set
# here, before any of our modules imports numpy; an explicit setting is kept.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
