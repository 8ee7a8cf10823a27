import pytest

from exporters.artifacts import ArtifactStore


@pytest.fixture(scope="session")
def session_store(tmp_path_factory) -> ArtifactStore:
    """One artifact store for the session, so a model exported by one test is a cache hit for
    the next."""
    return ArtifactStore(tmp_path_factory.mktemp("artifacts"))
