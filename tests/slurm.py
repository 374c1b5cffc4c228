"""The environment of a one-task SLURM job (job 4242), as the resume and preemption tests set it."""

from __future__ import annotations

SLURM_JOB = {
    "SLURM_NTASKS": "1",
    "SLURM_JOB_NAME": "lit-rl",
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}
