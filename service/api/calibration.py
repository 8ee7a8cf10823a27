"""POST /calibrations: upload a calibration set for int8 exports, as ``.npy`` bytes of an
array [N, C, H, W] (normalised as the model expects). It is read with ``allow_pickle=False``
(never unpickled), stored under its content id beside the artifacts, and referenced from a
spec as ``{"precision": "int8", "calibration": id}``; its shape is checked against the model
when the spec is exported. A path is never taken: the server reads only what was sent."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from exporters.calibration import FIELD, MAX_SAMPLES, CalibrationStore, read_array
from exporters.errors import SpecError
from service.api.deps import SettingsDep, UserDep

router = APIRouter(tags=["calibration"])


class CalibrationPublic(BaseModel):
    id: str  # send it as the spec's ``calibration`` (with ``precision: int8``)
    samples: int
    shape: list[int]


def _store(data: bytes, store: CalibrationStore) -> CalibrationPublic:
    array = read_array(data)
    if array.ndim != 4 or array.dtype.kind not in "fiu" or not 1 <= len(array) <= MAX_SAMPLES:
        raise SpecError(
            f"a numeric array [N, C, H, W] with 1 to {MAX_SAMPLES} samples is needed; "
            f"got {array.dtype} {list(array.shape)}",
            field=FIELD,
        )
    return CalibrationPublic(id=store.put(array), samples=len(array), shape=list(array.shape))


@router.post("/calibrations", status_code=status.HTTP_201_CREATED, response_model=CalibrationPublic)
async def upload_calibration(
    request: Request, settings: SettingsDep, _user: UserDep
) -> CalibrationPublic:
    data = await request.body()  # bounded by the app's BodyLimit (the artifact bound)
    return await run_in_threadpool(_store, data, CalibrationStore(settings.data_dir))
