"""The inputs a runner feeds a model: random, real-valued, bounded in memory."""

from __future__ import annotations

from typing import Any

import numpy as np

INPUT_POOL_BYTES = 256 * 1024 * 1024


def random_inputs(
    specs: list[tuple[str, tuple[int, ...], Any]], pool: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """``pool`` distinct standard-normal input sets (never zeros: sparse-aware kernels and
    denormal handling make all-zero inputs faster than real images), fewer when the pool would
    exceed INPUT_POOL_BYTES: a large input times a large pool must not exhaust the host."""
    set_bytes = (
        sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in specs) or 1
    )
    pool = max(1, min(pool, INPUT_POOL_BYTES // set_bytes))
    rng = np.random.default_rng(seed)
    return [
        {
            name: rng.standard_normal(shape, dtype=np.float32).astype(dtype)
            for name, shape, dtype in specs
        }
        for _ in range(pool)
    ]
