"""drvault: deduplicated, compressed, encrypted backups and disaster-recovery copies."""

import os

# numpy (the in-memory index) needs no BLAS threads: one idle OpenBLAS thread per CPU would
# only compete with the backup pipeline.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
