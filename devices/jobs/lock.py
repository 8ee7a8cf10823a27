"""The host lock: one per machine, shared by exports, measurements and the CLI."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_LOCK = Path(tempfile.gettempdir()) / "latbench-host.lock"  # LATBENCH_HOST_LOCK overrides


def lock_path_from_env() -> Path:
    """The host lock the server and runners on this machine take (LATBENCH_HOST_LOCK), for a
    process without the service's settings (the gate, a bench script)."""
    return Path(os.environ.get("LATBENCH_HOST_LOCK", DEFAULT_LOCK))


@contextmanager
def host_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Host-wide reader/writer lock: exports hold it shared, a measurement exclusively, so no
    export runs on a host while a measurement owns it (across processes, not just threads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
