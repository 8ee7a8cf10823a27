"""Calibration inputs of an int8 export: a user's set (stored by content id) or synthetic.

Which one was used is part of every quantized artifact's record (``calibration: user|synthetic``
and the sample count), because a synthetic-calibrated model says nothing about accuracy: its
activation ranges come from noise, not images. A user's set arrives as a ``.npy`` array or a
folder of images (CLI) or as uploaded ``.npy`` bytes (API); arrays are read with
``allow_pickle=False``, never unpickled, and stored under their content hash, which the spec
names (``calibration``), so a path never reaches the spec and the set is in its hash.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.errors import NotFoundError, SpecError

FIELD = "calibration"
SYNTHETIC_SAMPLES = 16
HELD_ASIDE = 4  # inputs never used for calibration, on which SQNR is measured
MAX_SAMPLES = 1024
MAX_BYTES = 512 * 1024 * 1024
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Calibration:
    """Inputs to calibrate on and inputs held aside to measure the quantization error on."""

    source: str  # "user" | "synthetic"
    samples: np.ndarray  # (N, C, H, W) float32
    held_aside: np.ndarray  # (M, C, H, W) float32
    set_id: str | None = None

    def record(self) -> dict[str, object]:
        return {"calibration": self.source, "samples": len(self.samples), "set": self.set_id}


def synthetic(shape: tuple[int, ...], samples: int = SYNTHETIC_SAMPLES) -> Calibration:
    """Standard-normal inputs (the range of normalised images), fixed seeds: reproducible."""
    per_sample = tuple(shape[1:])
    calibrate = np.random.default_rng(1).standard_normal((samples, *per_sample), np.float32)
    aside = np.random.default_rng(2).standard_normal((HELD_ASIDE, *per_sample), np.float32)
    return Calibration("synthetic", calibrate, aside)


def validate(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A user's array as (N, C, H, W) float32 matching the model input; SpecError naming the
    ``calibration`` field otherwise."""
    want = tuple(shape[1:])
    if array.dtype.kind not in "fiu":
        raise SpecError(f"array of {array.dtype} given; numbers are needed", field=FIELD)
    if array.ndim != 4 or tuple(array.shape[1:]) != want:
        raise SpecError(
            f"shape {list(array.shape)} given; the model takes [N, {', '.join(map(str, want))}]",
            field=FIELD,
        )
    if not 1 <= len(array) <= MAX_SAMPLES:
        raise SpecError(f"{len(array)} samples given; 1 to {MAX_SAMPLES} are accepted", field=FIELD)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise SpecError("the array holds NaN or infinite values", field=FIELD)
    return array


def from_user(array: np.ndarray, shape: tuple[int, ...], set_id: str) -> Calibration:
    """Hold aside a fifth of a user's set (at most HELD_ASIDE) for the SQNR; a set too small to
    split is calibrated on whole and measured on synthetic inputs, and says so in ``set``."""
    array = validate(array, shape)
    aside = min(HELD_ASIDE, len(array) // 5)
    if aside == 0:
        return Calibration("user", array, synthetic(shape).held_aside, set_id)
    return Calibration("user", array[:-aside], array[-aside:], set_id)


def read_array(data: bytes) -> np.ndarray:
    """``.npy`` bytes as an array, never unpickled; SpecError naming the field otherwise."""
    if len(data) > MAX_BYTES:
        raise SpecError(f"{len(data)} bytes given; at most {MAX_BYTES} are accepted", field=FIELD)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SpecError(f"not a .npy array without objects: {exc}", field=FIELD) from exc


def read_images(folder: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Every image in ``folder`` resized (shorter side), centre-cropped to the input and
    normalised with the ImageNet mean and std, as timm's models expect."""
    from PIL import Image, UnidentifiedImageError

    _, channels, height, width = shape
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SpecError(f"folder {folder.name!r} holds no {'/'.join(IMAGE_SUFFIXES)}", field=FIELD)
    if channels != 3:
        raise SpecError(f"images give 3 channels; the model takes {channels}", field=FIELD)
    out = []
    for file in files[:MAX_SAMPLES]:
        try:
            image = Image.open(file).convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise SpecError(f"cannot read image {file.name!r}: {exc}", field=FIELD) from exc
        scale = max(height / image.height, width / image.width)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
        left, top = (image.width - width) // 2, (image.height - height) // 2
        pixels = np.asarray(image.crop((left, top, left + width, top + height)), np.float32)
        out.append(((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.stack(out)


def read_local(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """CLI: a ``.npy`` file or a folder of images, validated against the input ``shape``."""
    if path.is_dir():
        return validate(read_images(path, shape), shape)
    if path.suffix != ".npy" or not path.is_file():
        raise SpecError(f"{str(path)!r} is neither a .npy file nor a folder", field=FIELD)
    return validate(read_array(path.read_bytes()), shape)


class CalibrationStore:
    """Calibration sets by content id under ``<root>/calibration/<id>.npy`` (beside the
    artifact store, so export children reach it from the store root alone)."""

    def __init__(self, root: Path) -> None:
        self.directory = Path(root) / "calibration"

    def put(self, array: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        data = buffer.getvalue()
        set_id = hashlib.sha256(data).hexdigest()[:32]
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{set_id}.npy"
        if not final.is_file():
            scratch = final.with_name(f"{set_id}.{uuid.uuid4().hex}.tmp")
            scratch.write_bytes(data)
            scratch.replace(final)
        return set_id

    def get(self, set_id: str) -> np.ndarray:
        if not _ID.match(set_id):
            raise SpecError(f"malformed calibration id {set_id!r}", field=FIELD)
        path = self.directory / f"{set_id}.npy"
        if not path.is_file():
            raise NotFoundError(f"no calibration set {set_id!r}: upload it first")
        return np.load(path, allow_pickle=False)

    def calibration(self, set_id: str | None, shape: tuple[int, ...]) -> Calibration:
        """The stored set ``set_id`` for a model taking ``shape``, or synthetic inputs."""
        if set_id is None:
            return synthetic(shape)
        return from_user(self.get(set_id), shape, set_id)
