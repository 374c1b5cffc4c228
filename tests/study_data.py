"""Where the tests find the study's published data (not shipped with lit_rl).

``LIT_RL_STUDY_DATA`` names the folder; without it, ``../shared/data/self-attention-rl`` beside the
repository (where CI's clone has it). Tests that need it carry the ``study_data`` marker: when the
folder is absent they are skipped and pytest's summary says so in one line (``tests/conftest.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LIT_RL_STUDY_DATA"
DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "self-attention-rl"


def study_data_dir() -> Path:
    """The folder of the study's data: ``$LIT_RL_STUDY_DATA``, else ``../shared/data/self-attention-rl``."""
    value = os.environ.get(ENV_VAR)
    return Path(value) if value else DEFAULT


def study_pickle() -> Path:
    return study_data_dir() / "post_processed_results_56.pkl"


def study_data_present() -> bool:
    return study_pickle().is_file()
