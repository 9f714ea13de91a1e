"""Mixed precision where it pays: bfloat16 matrix work on hardware with native bfloat16."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


def has_native_bfloat16() -> bool:
    """TPUs, GPUs from Ampere (compute capability 8) on, CPUs with AVX-512 BF16 or AMX."""
    if tf.config.list_logical_devices("TPU"):
        return True
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        return all(d.get("compute_capability", (0, 0)) >= (8, 0) for d in details)
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(cpuinfo.split()))


def resolve_precision(name: str) -> str:
    """`auto`: bfloat16 matrix work where the hardware has it natively, float32 elsewhere."""
    if name != "auto":
        return name
    return "mixed_bfloat16" if has_native_bfloat16() else "float32"
