"""The project's own exception types; the CLI prints each as a single line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the value and what is accepted."""


class NonFiniteError(RuntimeError):
    """A loss term, the gradient or the module state became NaN or infinite during training.

    The message is one line naming the env step, where in the update it happened, the non-finite
    terms (``loss/policy``, ``loss/value``, ``loss/entropy``, ``loss/int_value``, ``loss/rnd``,
    ``gradient norm``) or the state-dict name of the parameter or buffer, and what to do.
    """
