"""A zoo entry: how one model is built and which overrides it accepts. Its own module, so the
model sources (``timm_models``, ``native``) and the registry that finds them import it without
importing each other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from exporters.errors import SpecError
from exporters.keys import did_you_mean
from exporters.spec import InputSpec

Builder = Callable[..., Any]  # (**overrides) -> torch.nn.Module, weights random


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Builder
    input_size: tuple[int, int, int]  # (C, H, W) the model is designed for
    knobs: Mapping[str, Any] = field(default_factory=dict)  # override name -> type annotation
    source: str = ""  # where the architecture comes from, shown to users
    img_size_arg: bool = False  # constructor takes img_size: resolution is part of the graph

    def default_input(self) -> InputSpec:
        channels, height, width = self.input_size
        return InputSpec(batch=1, channels=channels, height=height, width=width)

    def validate_overrides(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Check each override against the allow-list; errors name ``overrides.<knob>``."""
        clean: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in self.knobs:
                allowed = ", ".join(sorted(self.knobs)) or "none"
                raise SpecError(
                    f"unknown override {key!r}{did_you_mean(key, self.knobs)} for family "
                    f"{self.family!r}; allowed: {allowed}",
                    field=f"overrides.{key}",
                )
            try:
                clean[key] = TypeAdapter(self.knobs[key]).validate_python(value)
            except ValidationError as exc:
                raise SpecError(exc.errors()[0]["msg"], field=f"overrides.{key}") from exc
        return clean
