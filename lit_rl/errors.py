"""The one exception type for bad user input; the CLI prints it as a single line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the value and what is accepted."""
