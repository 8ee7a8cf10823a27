"""What quantization did to a model's numbers, and how calibration inputs reach a model with a
fixed batch: shared by the ONNX (``quantize``) and CoreML (``quantize_coreml``) quantizers."""

from __future__ import annotations

import numpy as np

from exporters.errors import ExportError


def numerical_effect(reference: np.ndarray, quantized: np.ndarray, fmt: str) -> dict[str, float]:
    """SQNR (dB) and cosine similarity of ``quantized`` against ``reference``; ExportError
    when the quantized output is not finite or has collapsed to a constant."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(quantized, dtype=np.float64).ravel()
    if not np.isfinite(got).all():
        raise ExportError(fmt, "the int8 model's output holds NaN or infinite values")
    if np.ptp(got) == 0 and np.ptp(ref) > 0:
        raise ExportError(fmt, f"the int8 model's output collapsed to the constant {got[0]:.4g}")
    noise = float(np.sum((ref - got) ** 2))
    signal = float(np.sum(ref**2))
    sqnr = 10 * np.log10(signal / noise) if noise > 0 else float("inf")
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    return {
        "sqnr_db": round(float(sqnr), 2) if np.isfinite(sqnr) else 999.0,
        "cosine": round(float(ref @ got / norms), 6) if norms > 0 else 0.0,
    }


def batches(array: np.ndarray, batch: int) -> list[np.ndarray]:
    """``array`` as whole model batches (the remainder dropped; at least one, repeating)."""
    if len(array) < batch:
        array = np.concatenate([array] * (batch // len(array) + 1))
    return [array[i : i + batch] for i in range(0, len(array) - batch + 1, batch)]
