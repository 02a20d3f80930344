"""Running the command line in-process: only the settings a test gives, output captured, and
the root logger put back afterwards (``main`` configures logging for the process)."""

import logging
from collections.abc import Iterator

import pytest

from remediation.entrypoints import cli

SETTING_NAMES = (
    "AZURE_TENANT_ID", "GRAPH_ENDPOINT", "EXCHANGE_ENDPOINT", "SANDBOX_TOKEN",
    "REMEDIATION_MODE", "VERIFY_DELAYS", "REMEDIATION_DB", "REMEDIATION_QUEUE",
    "VERIFICATION_QUEUE", "ServiceBusConnection__fullyQualifiedNamespace", "WORKER_CONCURRENCY",
    "MAX_DELIVERY_COUNT", "LOCK_DURATION", "HTTP_TIMEOUT", "HTTP_MAX_RETRIES", "ALERT_TITLES",
    "ALERT_LOOKBACK", "ALERT_POLL_INTERVAL", "SWEEP_RESTRICTED_USERS", "JOURNAL_TABLE_ENDPOINT",
    "AzureWebJobsStorage__accountName", "JOURNAL_TABLE_CONNECTION_STRING", "JOURNAL_TABLE_NAME",
    "MAILBOX_HYGIENE", "RATE_LIMIT_BLOCKS", "PROTECTED_GROUP_IDS", "MAX_REMEDIATIONS_PER_HOUR",
    "ESCALATION_WEBHOOK_URL", "ESCALATION_WEBHOOK_FORMAT", "TENANT_DOMAINS",
    "CASE_LINK_TEMPLATE", "RETRY_BACKOFF", "QUEUE_MAX_DELIVERY_COUNT", "ALERT_POLL_SCHEDULE",
    "COMPROMISE_WINDOW", "SIGNIN_CLEANUP", "RETURN_ACTION", "APPROVAL_TIMEOUT",
)


# The credential's own settings: a test's identity is the one it sets, never the machine's.
CREDENTIAL_NAMES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (*SETTING_NAMES, *CREDENTIAL_NAMES):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            settings: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``remediation ARGS`` with ``settings`` set: (exit status, stdout, stderr)."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err
