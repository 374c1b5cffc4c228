"""Measurement and study scripts built on lit_rl's public API (``plain_ppo`` is the independent reference).

Run them from the repository root as modules, e.g. ``python -m tools.benchmark``; lit_rl never imports
from here.
"""
