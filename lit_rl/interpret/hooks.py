"""Capture what attention modules compute, with forward hooks and no global switches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from lit_rl.models.extractors.axial_attention import AttentionMaps, AxialSelfAttention


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, list[AttentionMaps]]]:
    """Record the :class:`AttentionMaps` of every axial attention module of ``model``.

    Inside the ``with`` block each forward appends the maps of each module to a list keyed by the
    module's qualified name (e.g. ``"extractor.attention"``); on exit the hooks are removed and every
    module's ``record_attn`` is restored.

    Example::

        with record_attention(policy) as maps:
            policy(obs)
        weights = maps["extractor.attention"][0].weights["height"]
    """
    records: dict[str, list[AttentionMaps]] = {}
    handles, previous = [], {}
    for name, module in model.named_modules():
        if isinstance(module, AxialSelfAttention):
            records[name] = []
            previous[module] = module.record_attn
            module.record_attn = True
            handles.append(module.maps.register_forward_hook(_append_to(records[name])))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in previous.items():
            module.record_attn = flag


def _append_to(store: list[AttentionMaps]):
    def hook(module: nn.Module, args: tuple, output: AttentionMaps) -> None:
        store.append(output)

    return hook
