"""HTTP API: one router per resource; schemas in ``schemas``; dependencies in ``deps``."""
