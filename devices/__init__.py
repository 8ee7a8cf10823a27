"""Artifact -> measurement: device runners and the measurement protocol (no torch at import)."""
