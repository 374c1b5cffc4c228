"""Capture what attention modules compute, with forward hooks and no global switches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn

from lit_rl.models.extractors.axial_attention import AttentionMaps, AxialSelfAttention
from lit_rl.models.extractors.vit import ViTExtractor


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, list[AttentionMaps | Tensor]]]:
    """Record what every attention module of ``model`` computes.

    Inside the ``with`` block each forward appends, per module, the :class:`AttentionMaps` of an axial
    attention module (key: its qualified name, e.g. ``"extractor.attention"``) or the softmax weights
    ``[S, B, heads, K, K]`` of each ViT block (key ``"extractor.blocks.<i>"``); on exit the hooks are
    removed and every module's ``record_attn`` is restored.

    Example::

        with record_attention(policy) as maps:
            policy(obs)
        weights = maps["extractor.attention"][0].weights["height"]
    """
    records: dict[str, list[AttentionMaps | Tensor]] = {}
    handles, previous = [], {}
    for name, module in model.named_modules():
        if isinstance(module, AxialSelfAttention):
            probes = {name: module.maps}
        elif isinstance(module, ViTExtractor):
            probes = {f"{name}.blocks.{i}": probe for i, probe in enumerate(module.probes)}
        else:
            continue
        previous[module] = module.record_attn
        module.record_attn = True
        for key, probe in probes.items():
            records[key] = []
            handles.append(probe.register_forward_hook(_append_to(records[key])))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in previous.items():
            module.record_attn = flag


def _append_to(store: list[AttentionMaps | Tensor]):
    def hook(module: nn.Module, args: tuple, output: AttentionMaps | Tensor) -> None:
        store.append(output)

    return hook
