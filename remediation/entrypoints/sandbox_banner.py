"""What ``remediation sandbox`` prints before it serves: a quick start to paste into another
terminal, every line as it is.

First the worker's environment, all of it: the tenant and its endpoints, the static token
(it never expires), a journal of the sandbox's own (its cases never mix with the default
one), the mode said out loud, the demo's protected group and breaker (the storm trips it: one
grouped post names the held cases), verification delays of seconds instead of hours, and the
escalation webhook pointed at the sandbox's own receiver (each post is logged in the
sandbox's terminal). An ``unset`` line drops the settings that would send the worker to Azure
(Service Bus, a Table Storage journal) if the shell holds them. Then the two commands: queue
a request and work until every case is final. Last, for ``remediation doctor``, the app's own
identity: DefaultAzureCredential asks the sandbox's managed identity endpoint for a token per
resource, a JWT carrying the app's roles and wids (a static token shows neither, and a JWT for
Graph is refused by Exchange); the credentials that would win over it are unset.
"""

from datetime import UTC, datetime
from pathlib import Path
from shlex import quote

from remediation.entrypoints.demo import DEMO_BREAKER, OTHER_CREDENTIALS
from remediation.sandbox.identity_routes import IDENTITY_PATH
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from remediation.sandbox.state import SandboxTenant
from remediation.sandbox.webhook_routes import TEAMS_PATH, WEBHOOK_PATH

QUICK_START_DELAYS = "10s,20s,30s"
QUICK_START_USER = "adele.vance@contoso.com"
# Settings that would point a worker at Azure rather than at the sandbox and its own journal.
AZURE_ONLY = ("ServiceBusConnection__fullyQualifiedNamespace", "JOURNAL_TABLE_ENDPOINT",
              "JOURNAL_TABLE_CONNECTION_STRING", "AzureWebJobsStorage__accountName")


def worker_environment(tenant: SandboxTenant, url: str, port: int,
                       started: datetime | None = None) -> dict[str, str]:
    """Every setting a worker needs against the sandbox at ``url``, by name. The journal is
    this sandbox's start's own (``sandbox-PORT-YYYYMMDDTHHMMSS.db``): the tenant is seeded
    afresh at every start, and a journal kept from an earlier start would count its resets
    against the breaker and hold its cases as known."""
    stamp = (started or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return {
        "AZURE_TENANT_ID": tenant.tenant_id,
        "GRAPH_ENDPOINT": url,
        "EXCHANGE_ENDPOINT": url,
        "REMEDIATION_DB": str(Path.cwd() / ".remediation" / f"sandbox-{port}-{stamp}.db"),
        "SANDBOX_TOKEN": tenant.token,
        "REMEDIATION_MODE": "enforce",
        "PROTECTED_GROUP_IDS": BREAK_GLASS_GROUP_ID,
        "MAX_REMEDIATIONS_PER_HOUR": str(DEMO_BREAKER),
        "VERIFY_DELAYS": QUICK_START_DELAYS,
        "ESCALATION_WEBHOOK_URL": url + TEAMS_PATH,
        "ESCALATION_WEBHOOK_FORMAT": "teams",
    }


def banner(tenant: SandboxTenant, url: str, port: int) -> list[str]:
    """The lines, in order: the worker's (its ``export`` and ``unset`` lines, then the two
    commands), then doctor's (after the line naming ``remediation doctor``)."""
    delays = ", ".join(f"+{delay}" for delay in QUICK_START_DELAYS.split(","))
    return [
        f"sandbox tenant serving on {url}: the demo's accounts, blocks and Defender alerts "
        "(nothing in it is real)",
        "quick start: in another terminal (inside .venv), paste this first block to point a "
        "worker (remediation run) at it:",
        *(f"  export {name}={quote(value)}"
          for name, value in worker_environment(tenant, url, port).items()),
        f"  unset {' '.join(AZURE_ONLY)}",
        "then queue a request and work until every case is final (the sweep also finds the "
        f"other blocked accounts; checks at {delays}):",
        f"  remediation enqueue --user {QUICK_START_USER} --reason "
        f"{quote('sandbox quick start')}",
        "  remediation run --until-idle",
        "escalation posts are logged here as they arrive (every one: "
        f"curl {url}{WEBHOOK_PATH}); see the cases with: remediation status",
        "for remediation doctor, the app's own identity instead (its managed identity",
        "endpoint, as Azure Functions gives one; tokens carry the app's roles and wids):",
        "  export SANDBOX_TOKEN=",
        f"  export IDENTITY_ENDPOINT={quote(url + IDENTITY_PATH)}",
        f"  export IDENTITY_HEADER={quote(tenant.identity_header)}",
        f"  export AZURE_CLIENT_ID={quote(tenant.managed_identity_client_id)}",
        f"  unset {' '.join(OTHER_CREDENTIALS)}",
    ]
