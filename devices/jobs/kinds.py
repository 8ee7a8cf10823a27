"""Job kinds by name. A kind is one task function (artifacts by role in, result out, on the device
host) and the pydantic schema of its result; the server validates what a runner posts against it.
Add a kind with ``@register_kind("name", result=Schema)`` in a module listed in ``KIND_MODULES``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from devices.jobs.port import Host, JobTask
from exporters.errors import SpecError

TaskFunction = Callable[[JobTask, dict[str, Path], Host], BaseModel]

# The kinds a device host runs; a server-side kind (``on_server``) registers from the server's
# own package (``service.predict.kind``), which a device host does not install.
KIND_MODULES = ("devices.jobs.profile", "devices.jobs.compare")


@dataclass(frozen=True)
class Kind:
    name: str
    run: TaskFunction
    result: type[BaseModel]
    on_server: bool = False  # run by the server in the job's export step, never sent to a runner


_KINDS: dict[str, Kind] = {}


def register_kind(
    name: str, *, result: type[BaseModel], on_server: bool = False
) -> Callable[[TaskFunction], TaskFunction]:
    def add(function: TaskFunction) -> TaskFunction:
        _KINDS[name] = Kind(name=name, run=function, result=result, on_server=on_server)
        return function

    return add


def _loaded() -> dict[str, Kind]:
    for module in KIND_MODULES:
        importlib.import_module(module)
    return _KINDS


def get_kind(name: str) -> Kind:
    kinds = _loaded()
    if name not in kinds:
        raise SpecError(
            f"unknown job kind {name!r}; known: {', '.join(sorted(kinds))}", field="kind"
        )
    return kinds[name]


def server_kinds() -> list[str]:
    """The kinds the server runs itself, in a job's export step."""
    return sorted(name for name, kind in _loaded().items() if kind.on_server)
