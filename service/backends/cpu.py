"""What the CPU can do, from /proc/cpuinfo: whether it multiplies bfloat16 natively (without that, bfloat16 is slower
than float32)."""

from __future__ import annotations

from pathlib import Path

BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        with cpuinfo.open() as lines:
            for line in lines:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    return bool(cpu_flags() & BF16_CPU_FLAGS)
