"""Which precision "auto" picks for the MiniLM encoders."""

from __future__ import annotations

import pytest

from service.backends import cpu, minilm
from service.ports import Precision


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx512f", "amx_bf16", "amx_tile"}, "bfloat16"),
        ({"avx512_bf16"}, "bfloat16"),
        ({"avx2", "fma"}, "int8"),
        (set(), "int8"),
    ],
)
def test_auto_picks_bfloat16_only_where_the_cpu_multiplies_it(
    monkeypatch: pytest.MonkeyPatch, flags: set[str], expected: str
) -> None:
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))
    assert minilm.resolve_precision("auto") == expected


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_an_explicit_precision_is_kept(monkeypatch: pytest.MonkeyPatch, precision: Precision) -> None:
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset())
    assert minilm.resolve_precision(precision) == precision
