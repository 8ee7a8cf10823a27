"""A route's answer written straight from the response model it built.

Given a model, FastAPI dumps it, validates the dump against the response model again and
serialises the result, for a sync route in a second trip to the thread pool: on the polled read
routes that cost as much CPU as their query (bench/load.py). A model built by the route was
validated when it was built; ``ModelJSON`` serialises it once, with the same serializer. Routes
keep ``response_model`` for the OpenAPI schema (which tests/service/test_schema_fuzz.py checks
every answer against).
"""

from __future__ import annotations

from fastapi.responses import Response
from pydantic import BaseModel


class ModelJSON(Response):
    media_type = "application/json"

    def __init__(self, model: BaseModel, status_code: int = 200) -> None:
        super().__init__(model.model_dump_json(), status_code=status_code)
