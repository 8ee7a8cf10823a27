"""POST /artifacts: upload a ready ONNX model (the CLI builds locally and uploads, so a server
never imports user code). The body is the file's bytes; it is streamed to scratch space under a
byte bound, hashed, validated (``onnx.checker``, opset range, no external data) and published
atomically in the content-addressed store: a refused upload leaves nothing stored, and the same
bytes uploaded twice are one artifact. Validation and the work budget (the same as a spec's:
declared inputs, shape-inferred activation bytes, parameters) run in a bounded child
(``exporters.budget.admit_upload``) before any database slot is taken: a refusal is a 422 naming
the budget. Only ONNX is taken here: loading ``.pt2`` means unpickling
its constants, and an ``.mlpackage`` is a directory tree.
"""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from exporters.artifacts import ArtifactStore
from exporters.budget import admit_upload
from exporters.errors import PayloadTooLargeError, SpecError
from exporters.sources.ready import reparam_summary
from service import retention
from service.api.deps import CheckersDep, SettingsDep, UserDep, run_check, write_session
from service.api.schemas import ReparamPublic
from service.db import owners
from service.db.artifacts import record_upload

router = APIRouter(tags=["artifacts"])


class ArtifactPublic(BaseModel):
    id: str  # the artifact key: send it as ``artifact`` to POST /profile
    format: str
    model: str
    size_bytes: int
    cached: bool
    reparam: ReparamPublic = Field(
        default_factory=lambda: ReparamPublic(**reparam_summary(None, built=False))
    )
    checks: dict


async def _receive(request: Request, dest: Path, limit: int) -> int:
    """Stream the body to ``dest``, refusing it as soon as it passes ``limit`` bytes."""
    size = 0
    with dest.open("wb") as handle:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"artifact exceeds {limit} bytes (LATBENCH_MAX_ARTIFACT_BYTES)"
                )
            handle.write(chunk)
    if size == 0:
        raise SpecError("empty body: send the .onnx file's bytes", field="body")
    return size


@router.post("/artifacts", status_code=status.HTTP_201_CREATED, response_model=ArtifactPublic)
async def upload_artifact(
    request: Request,
    response: Response,
    settings: SettingsDep,
    checkers: CheckersDep,
    user: UserDep,
    name: str = Query("uploaded", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$"),
) -> ArtifactPublic:
    async with write_session(request) as session:
        room = await run_in_threadpool(
            owners.upload_room, session, owner=user, quota=settings.max_upload_bytes_per_user
        )
    store = ArtifactStore(settings.data_dir)
    scratch = store.root / "tmp" / f"upload-{uuid.uuid4().hex}.onnx"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        await _receive(request, scratch, settings.max_artifact_bytes)
        admit = partial(
            admit_upload, store.root, scratch, label=name,
            max_bytes=settings.max_artifact_bytes, budget=settings.work_budget,
        )  # fmt: skip
        done = await run_in_threadpool(run_check, checkers, admit, field="artifact")
    finally:
        scratch.unlink(missing_ok=True)
    artifact = done.artifact
    size = artifact.meta.get("size_bytes", 0)
    async with write_session(request) as session:  # only now: never held while bytes stream in
        await run_in_threadpool(
            record_upload, session, key=artifact.key, label=name, path=str(artifact.path),
            meta=artifact.meta,
        )  # fmt: skip
        await run_in_threadpool(
            owners.record_owner, session, key=artifact.key,
            content_hash=artifact.key.split("-")[0], owner=user, size_bytes=size, room=room,
        )  # fmt: skip
        await run_in_threadpool(retention.collect, session, settings)
    if done.cached:
        response.status_code = status.HTTP_200_OK
    return ArtifactPublic(
        id=artifact.key,
        format=artifact.format.value,
        model=artifact.meta.get("model", name),
        size_bytes=artifact.meta.get("size_bytes", 0),
        cached=done.cached,
        checks=artifact.meta.get("checks", {}),
    )
