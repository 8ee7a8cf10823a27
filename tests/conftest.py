import os

import pytest

# TestClient sends Host: testserver, refused by a loopback server (DNS rebinding) unless allowed
os.environ.setdefault("LATBENCH_ALLOWED_HOSTS", '["testserver"]')


@pytest.fixture(scope="session", autouse=True)
def _quiet_single_thread_torch():
    """Tests share 2 cores with other jobs; one torch thread keeps them predictable."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
    except ImportError:  # a runner-only install has no torch
        return
    torch.set_num_threads(1)
