"""The model zoo: every timm model plus natively written ones (``exporters.zoo.native``)."""

from exporters.zoo.registry import (
    ModelEntry,
    ResolvedSpec,
    build,
    get_model,
    list_models,
    register_model,
    resolve,
)

__all__ = [
    "ModelEntry",
    "ResolvedSpec",
    "build",
    "get_model",
    "list_models",
    "register_model",
    "resolve",
]
