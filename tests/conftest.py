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


# Skips that say only "this is not that platform": every other skip backs a documented promise
# (a server, a client, a capability the CI machine has), so CI fails it instead of passing by it.
PLATFORM_SKIPS = ("requires macOS", "non-macOS behaviour")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under LATBENCH_REQUIRE_SERVICES=1 (set by .ci/run) a skipped test is a failure, with its
    reason, unless the reason is one of PLATFORM_SKIPS."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("LATBENCH_REQUIRE_SERVICES") != "1" or not report.skipped:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(platform in reason for platform in PLATFORM_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under LATBENCH_REQUIRE_SERVICES=1, which fails every skip: {reason}"
