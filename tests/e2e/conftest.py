"""The credential path that runs in Azure: DefaultAzureCredential against the sandbox's
managed identity endpoint (tests/conftest.py, ``managed_identity``)."""

import pytest


@pytest.fixture(autouse=True)
def _tokens_from_the_managed_identity(managed_identity: None) -> None:
    return None
