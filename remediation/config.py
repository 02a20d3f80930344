"""Settings from environment variables (the same names as the Azure app settings)."""

import ipaddress
import os
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse, urlsplit

from remediation.domain import ncrontab
from remediation.domain.alerts import DEFAULT_ALERT_TITLES
from remediation.domain.durations import (
    DurationTooLong,
    format_duration,
    parse_delays,
    parse_duration,
)
from remediation.service.settings import (
    DEFAULT_APPROVAL_TIMEOUT,
    HYGIENE_MODES,
    MODES,
    RATE_LIMIT_MODES,
    RETURN_ACTIONS,
    SIGNIN_CLEANUP_MODES,
    WEBHOOK_FORMATS,
)

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Tenant and group object ids: GUIDs written the way Azure shows them (no braces, no urn:).
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A DNS label (RFC 1035, as Entra's verified domains are written: ASCII, an IDN as xn--).
DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
CASE_LINK_FIELDS = ("case_id", "user")
_D = TypeVar("_D", int, None)
# The longest each duration may be. Verification and the alert look-back stay within Service
# Bus's longest duplicate-detection window (7 days); the local lock within Service Bus's
# longest lock (5 minutes, ServiceBusQueueData.LockDuration); one HTTP call within half the
# Functions timeout (10 minutes, host.json); the back-off within its own cap (15 minutes).
LONGEST = {
    "VERIFY_DELAYS": timedelta(days=7),
    "ALERT_LOOKBACK": timedelta(days=7),
    "ALERT_POLL_INTERVAL": timedelta(days=1),
    "LOCK_DURATION": timedelta(minutes=5),
    "HTTP_TIMEOUT": timedelta(minutes=5),
    "RETRY_BACKOFF": timedelta(minutes=15),
    # The audit log keeps 30 days at most (P1/P2; 7 on Free): a longer window would count
    # methods whose registration nobody can date any more.
    "COMPROMISE_WINDOW": timedelta(days=30),
    # A week, as the verification delays and the look-back: a block left waiting longer is
    # no decision anyone is still about to take.
    "APPROVAL_TIMEOUT": timedelta(days=7),
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it first (``NAME: problem``)."""


# An app setting that is a Key Vault (or App Configuration) reference App Service could not
# resolve reaches the app as the reference's own text: "If a reference isn't resolved
# properly, the reference string is used instead" (Microsoft Learn, "Use Key Vault references
# as app settings in Azure App Service and Azure Functions", Troubleshooting; source:
# MicrosoftDocs/azure-docs, articles/app-service/app-service-key-vault-references.md).
_UNRESOLVED = re.compile(r"\s*@Microsoft\.(KeyVault|AppConfiguration)\(", re.IGNORECASE)
# What to check for each kind, as the portal shows it (keyVaultReferenceIdentity names the
# identity for both kinds: "App Configuration references" on Microsoft Learn).
_REFERENCES = {
    "keyvault": ("Key Vault", "KeyVault", "secret",
                 "the vault, the secret, the identity's Key Vault Secrets User role"),
    "appconfiguration": ("App Configuration", "AppConfiguration", "value",
                         "the store, the key, the identity's App Configuration Data Reader "
                         "role"),
}


class _Resolved(Mapping[str, str]):
    """The environment, where a setting that is still a reference is a ConfigError naming it
    (never its text: a webhook URL, a group list or a mode is never read from it)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, name: str) -> str:
        value = self._env[name]
        unresolved = _UNRESOLVED.match(value)
        if unresolved:
            kind, written, what, check = _REFERENCES[unresolved[1].lower()]
            raise ConfigError(
                f"{name}: an unresolved {kind} reference (@Microsoft.{written}(...)): App "
                f"Service could not read the {what}; the app's Environment variables page in "
                f"the Azure portal shows the reference's status ({check}, "
                "keyVaultReferenceIdentity); fix it, then restart the app")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


@dataclass(frozen=True)
class Settings:
    tenant_id: str = ""
    graph_endpoint: str = "https://graph.microsoft.com"
    exchange_endpoint: str = "https://outlook.office365.com"
    sandbox_token: str | None = field(default=None, repr=False)
    mode: str = "enforce"
    verify_delays: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(hours=4),
                                            timedelta(hours=24))
    remediation_db: Path = Path(".remediation/state.db")
    remediation_queue: str = "remediation-requests"
    verification_queue: str = "remediation-verifications"
    service_bus_namespace: str | None = None
    # Users at once in the local runtime. One Python process secures about 5-6 cases a
    # second at most (0.17-0.2 s of CPU a case, docs/BENCHMARKS.md) and a case lasts ~2.4 s,
    # so ~15 at once saturate it; 32 keeps a burst's queue wait off the critical path without
    # a tenant's Graph budget in sight (at that ceiling, ~28 Graph calls a case: ~1,700
    # requests per 10 s against 3,500-8,000 ResourceUnits per 10 s and 3,000 writes per 150 s
    # per app and tenant, learn.microsoft.com/graph/throttling-limits); throttling stops new
    # users (LocalWorker's ``throttled``).
    worker_concurrency: int = 32
    # Processes of `remediation run` (one core each: a Python process uses one), sharing
    # WORKER_CONCURRENCY; more than one is the local twin of more Functions worker processes
    # (entrypoints.helper_processes).
    worker_processes: int = 1
    max_delivery_count: int = 10
    # The queues' own maxDeliveryCount, when known (infra sets it with the queues); None:
    # the same number as max_delivery_count (the local twin's queue is built with it).
    queue_max_delivery_count: int | None = None
    retry_backoff: timedelta = timedelta(seconds=30)
    lock_duration: timedelta = timedelta(minutes=5)
    http_timeout: timedelta = timedelta(seconds=30)
    http_max_retries: int = 3
    alert_titles: tuple[str, ...] = DEFAULT_ALERT_TITLES
    alert_lookback: timedelta = timedelta(hours=1)
    alert_poll_interval: timedelta = timedelta(minutes=2)
    alert_poll_schedule: str = ncrontab.EXAMPLE  # the Functions timer's (every 2 minutes)
    sweep_restricted_users: bool = True
    journal_table_endpoint: str | None = None
    journal_table_connection_string: str | None = field(default=None, repr=False)
    journal_table_name: str = "remediationjournal"
    mailbox_hygiene: str = "disable"
    compromise_window: timedelta = timedelta(days=7)
    signin_cleanup: str = "remove"
    return_action: str = "escalate"
    rate_limit_blocks: str = "escalate"
    approval_timeout: timedelta = DEFAULT_APPROVAL_TIMEOUT
    protected_group_ids: frozenset[str] = frozenset()
    max_remediations_per_hour: int = 20
    escalation_webhook_url: str | None = field(default=None, repr=False)
    escalation_webhook_format: str = "teams"
    tenant_domains: frozenset[str] = frozenset()
    case_link_template: str = "remediation status --user {user}"
    # Least privilege the operator chose (README, "Permissions"): the administrative unit
    # whose members alone the robot may change, and how it reaches mailboxes.
    scope_administrative_unit_id: str | None = None
    mailbox_access: str = "tenant-wide"

    @property
    def uses_loopback_endpoints(self) -> bool:
        return all(_host(url) in LOOPBACK_HOSTS
                   for url in (self.graph_endpoint, self.exchange_endpoint))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = _Resolved(os.environ if env is None else env)
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        try:
            settings = cls(
                tenant_id=text("AZURE_TENANT_ID", "").lower(),
                graph_endpoint=text("GRAPH_ENDPOINT", defaults.graph_endpoint).rstrip("/"),
                exchange_endpoint=text("EXCHANGE_ENDPOINT", defaults.exchange_endpoint).rstrip("/"),
                sandbox_token=env.get("SANDBOX_TOKEN") or None,
                mode=text("REMEDIATION_MODE", defaults.mode),
                verify_delays=_delays(text("VERIFY_DELAYS", "1h,4h,24h")),
                remediation_db=Path(text("REMEDIATION_DB", str(defaults.remediation_db))),
                remediation_queue=text("REMEDIATION_QUEUE", defaults.remediation_queue),
                verification_queue=text("VERIFICATION_QUEUE", defaults.verification_queue),
                service_bus_namespace=env.get(
                    "ServiceBusConnection__fullyQualifiedNamespace") or None,
                worker_concurrency=_int(env, "WORKER_CONCURRENCY", 32, 1, 256),
                worker_processes=_int(env, "WORKER_PROCESSES", 1, 1, 16),
                max_delivery_count=_int(env, "MAX_DELIVERY_COUNT", 10, 1, 2000),
                queue_max_delivery_count=_int(env, "QUEUE_MAX_DELIVERY_COUNT", None, 1, 2000),
                retry_backoff=_duration("RETRY_BACKOFF", text("RETRY_BACKOFF", "30s")),
                lock_duration=_duration("LOCK_DURATION", text("LOCK_DURATION", "5m")),
                http_timeout=_duration("HTTP_TIMEOUT", text("HTTP_TIMEOUT", "30s")),
                http_max_retries=_int(env, "HTTP_MAX_RETRIES", 3, 0, 10),
                alert_titles=_titles(env.get("ALERT_TITLES", "")),
                alert_lookback=_duration("ALERT_LOOKBACK", text("ALERT_LOOKBACK", "1h")),
                alert_poll_interval=_duration("ALERT_POLL_INTERVAL",
                                              text("ALERT_POLL_INTERVAL", "2m")),
                alert_poll_schedule=text("ALERT_POLL_SCHEDULE", defaults.alert_poll_schedule),
                sweep_restricted_users=_bool(env, "SWEEP_RESTRICTED_USERS", True),
                journal_table_endpoint=_table_endpoint(env),
                journal_table_connection_string=env.get("JOURNAL_TABLE_CONNECTION_STRING")
                or None,
                journal_table_name=text("JOURNAL_TABLE_NAME", defaults.journal_table_name),
                mailbox_hygiene=text("MAILBOX_HYGIENE", defaults.mailbox_hygiene),
                compromise_window=_duration("COMPROMISE_WINDOW",
                                            text("COMPROMISE_WINDOW", "7d")),
                signin_cleanup=text("SIGNIN_CLEANUP", defaults.signin_cleanup).lower(),
                return_action=text("RETURN_ACTION", defaults.return_action).lower(),
                rate_limit_blocks=text("RATE_LIMIT_BLOCKS", defaults.rate_limit_blocks),
                approval_timeout=_duration("APPROVAL_TIMEOUT",
                                           text("APPROVAL_TIMEOUT", "24h")),
                protected_group_ids=_group_ids(env.get("PROTECTED_GROUP_IDS", "")),
                max_remediations_per_hour=_int(env, "MAX_REMEDIATIONS_PER_HOUR", 20, 0, 100000),
                escalation_webhook_url=env.get("ESCALATION_WEBHOOK_URL", "").strip() or None,
                escalation_webhook_format=text("ESCALATION_WEBHOOK_FORMAT",
                                               defaults.escalation_webhook_format).lower(),
                tenant_domains=_domains(env.get("TENANT_DOMAINS", "")),
                case_link_template=text("CASE_LINK_TEMPLATE", defaults.case_link_template),
                scope_administrative_unit_id=text("SCOPE_ADMINISTRATIVE_UNIT_ID", "").lower()
                or None,
                mailbox_access=text("MAILBOX_ACCESS", defaults.mailbox_access).lower(),
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None
        settings.validate()
        return settings

    @property
    def broker_max_delivery_count(self) -> int:
        """The deliveries after which the broker dead-letters a message."""
        return self.queue_max_delivery_count or self.max_delivery_count

    @property
    def uses_local_database(self) -> bool:
        """The SQLite file holds the queue (no Service Bus namespace) or the journal (no
        table): REMEDIATION_DB must then be a file this user can create and write."""
        return not self.service_bus_namespace or not (
            self.journal_table_endpoint or self.journal_table_connection_string)

    def require_tenant(self) -> "Settings":
        """For what talks to the tenant (run, doctor, the Functions app): its id is set."""
        if not self.tenant_id:
            raise ConfigError("AZURE_TENANT_ID: not set (the tenant id, a GUID)")
        return self

    def validate(self) -> None:
        if self.tenant_id and not GUID.fullmatch(self.tenant_id):
            raise ConfigError(f"AZURE_TENANT_ID: {self.tenant_id!r} is not a tenant id (a GUID)")
        for group_id in sorted(self.protected_group_ids):
            if not GUID.fullmatch(group_id):
                # A typo must never quietly protect nobody.
                raise ConfigError(f"PROTECTED_GROUP_IDS: {group_id!r} is not a group object id "
                                  "(a GUID)")
        _check_case_link(self.case_link_template)
        _check_scope(self.scope_administrative_unit_id, self.mailbox_access)
        if self.alert_lookback <= self.alert_poll_interval:
            raise ConfigError(
                f"ALERT_LOOKBACK: {format_duration(self.alert_lookback)} must be longer than "
                f"ALERT_POLL_INTERVAL ({format_duration(self.alert_poll_interval)}), or polls "
                "miss alerts")
        _check_poll_schedule(self.alert_poll_schedule, self.alert_lookback)
        if self.max_delivery_count > self.broker_max_delivery_count:
            raise ConfigError(
                f"MAX_DELIVERY_COUNT: {self.max_delivery_count} is more than the queues' "
                f"maxDeliveryCount (QUEUE_MAX_DELIVERY_COUNT, {self.broker_max_delivery_count})"
                ": Service Bus would dead-letter a message before its case is escalated")
        _check_database(self.remediation_db, usable=self.uses_local_database)
        if self.max_remediations_per_hour < 1:  # a breaker always open is no way to stop it
            raise ConfigError(
                "MAX_REMEDIATIONS_PER_HOUR: 0 would refuse every password reset and escalate "
                "every case as a mass compromise; it must be at least 1. To stop the robot, "
                "run `remediation pause --by NAME --reason TEXT` (and `remediation resume` "
                "to go on)")
        if self.mode not in MODES:
            raise ConfigError(f"REMEDIATION_MODE: must be one of {', '.join(MODES)}")
        if self.mailbox_hygiene not in HYGIENE_MODES:
            raise ConfigError(f"MAILBOX_HYGIENE: must be one of {', '.join(HYGIENE_MODES)}")
        if self.signin_cleanup not in SIGNIN_CLEANUP_MODES:
            raise ConfigError(f"SIGNIN_CLEANUP: must be one of {', '.join(SIGNIN_CLEANUP_MODES)}")
        if self.return_action not in RETURN_ACTIONS:
            raise ConfigError(f"RETURN_ACTION: must be one of {', '.join(RETURN_ACTIONS)}")
        if self.rate_limit_blocks not in RATE_LIMIT_MODES:
            raise ConfigError(f"RATE_LIMIT_BLOCKS: {self.rate_limit_blocks!r} must be one of "
                              f"{', '.join(RATE_LIMIT_MODES)}")
        if self.escalation_webhook_url:
            _check_webhook(self.escalation_webhook_url)
        if self.escalation_webhook_format not in WEBHOOK_FORMATS:
            raise ConfigError(f"ESCALATION_WEBHOOK_FORMAT: {self.escalation_webhook_format!r} "
                              f"must be {' or '.join(WEBHOOK_FORMATS)}")
        for name, url in (("GRAPH_ENDPOINT", self.graph_endpoint),
                          ("EXCHANGE_ENDPOINT", self.exchange_endpoint)):
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConfigError(f"{name}: must be an http(s) URL, got {url!r}")
            if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
                raise ConfigError(f"{name}: must use https (plain http only for loopback)")
        if self.sandbox_token and not self.uses_loopback_endpoints:
            raise ConfigError("SANDBOX_TOKEN is honoured only when GRAPH_ENDPOINT and "
                              "EXCHANGE_ENDPOINT are loopback addresses; unset it")


def _host(url: str) -> str:
    return (urlparse(url).hostname or "").lower()


def _table_endpoint(env: Mapping[str, str]) -> str | None:
    """The journal's table endpoint: explicit, or the Function App's own storage account."""
    explicit = env.get("JOURNAL_TABLE_ENDPOINT", "").strip()
    if explicit:
        return explicit.rstrip("/")
    account = env.get("AzureWebJobsStorage__accountName", "").strip()
    return f"https://{account}.table.core.windows.net" if account else None


def _set(raw: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def _domains(raw: str) -> frozenset[str]:
    """TENANT_DOMAINS: ``,``-separated DNS domain names (empty: read from Graph). A typo
    would count the tenant's own mail as going outside, or an outside domain as the tenant's."""
    if not raw.strip():
        return frozenset()
    names = [part.strip() for part in raw.split(",")]
    for name in names:
        if not name:
            raise ConfigError(f"TENANT_DOMAINS: an empty item in {raw!r} (domain names are "
                              "separated by single commas)")
        _check_domain(name)
    return frozenset(name.lower() for name in names)


def _check_domain(name: str) -> None:
    if "@" in name:
        raise ConfigError(f"TENANT_DOMAINS: {name!r} is an address, not a domain name: write "
                          "what follows the @")
    if "://" in name or "/" in name:
        raise ConfigError(f"TENANT_DOMAINS: {name!r} is a URL, not a domain name: write its "
                          "host alone, e.g. contoso.com")
    if not name.isascii():
        # No suggestion: Python's codec is IDNA 2003, which maps straße.de to strasse.de, a
        # different (someone else's) domain; the tenant's own list shows the xn-- form.
        raise ConfigError(f"TENANT_DOMAINS: {name!r} is not a domain name in ASCII: write it "
                          "in its xn-- form, as the tenant's domain list (Graph /domains) "
                          "shows it")
    labels = name.lower().split(".")
    if labels[-1].isdigit():
        raise ConfigError(f"TENANT_DOMAINS: {name!r} is an IP address or ends in a number: "
                          "a domain name ends in a top-level domain, e.g. contoso.com")
    if len(name) > 253 or len(labels) < 2 or not all(DNS_LABEL.fullmatch(label)
                                                      for label in labels):
        raise ConfigError(f"TENANT_DOMAINS: {name!r} is not a domain name (labels of letters, "
                          "digits and hyphens separated by dots, at least two, e.g. "
                          "contoso.com; several are separated by commas)")


def _group_ids(raw: str) -> frozenset[str]:
    ids = _set(raw)
    if raw.strip() and not ids:
        raise ConfigError(f"PROTECTED_GROUP_IDS: {raw!r} names no group (leave it empty to "
                          "protect no group)")
    return ids


def _duration(name: str, raw: str) -> timedelta:
    """A positive duration no longer than ``LONGEST[name]``."""
    try:
        value = parse_duration(raw, LONGEST[name])
    except DurationTooLong:
        value = None  # said below, as for any duration out of bounds
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a duration (a number with s, m, h or d, "
                          "e.g. 1h)") from None
    if value is None or not timedelta(0) < value <= LONGEST[name]:
        raise ConfigError(f"{name}: {raw!r} must be more than 0s and at most "
                          f"{_longest(LONGEST[name])}")
    return value


def _check_poll_schedule(schedule: str, lookback: timedelta) -> None:
    """The Functions timer's schedule can be read, and each poll looks back further than the
    longest wait for the next one: a shorter look-back never reads what the gap raised."""
    try:
        longest = ncrontab.parse(schedule).longest_interval()
    except ValueError as error:
        raise ConfigError(f"ALERT_POLL_SCHEDULE: {schedule!r}: {error}") from None
    if lookback <= longest:
        raise ConfigError(
            f"ALERT_LOOKBACK: {_longest(lookback)} must be longer than the longest interval "
            f"between runs of ALERT_POLL_SCHEDULE ({schedule!r}: {_longest(longest)}), or "
            "polls miss alerts")


def _longest(bound: timedelta) -> str:
    return f"{bound.days}d" if bound.days and not bound.seconds else format_duration(bound)


def _delays(raw: str) -> tuple[timedelta, ...]:
    for part in raw.split(","):
        if part.strip():
            _duration("VERIFY_DELAYS", part.strip())
    try:
        return parse_delays(raw)  # at least one, increasing
    except ValueError as error:
        raise ConfigError(f"VERIFY_DELAYS: {error}") from None


def _check_case_link(template: str) -> None:
    """Only ``{case_id}`` and ``{user}``, written plainly: a field like ``{user.__class__}``
    would reach into objects, and an unknown one fails only when an escalation is sent."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion
                  in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ConfigError(f"CASE_LINK_TEMPLATE: not a format string ({error})") from None
    for name, spec, conversion in fields:
        written = "{" + name + (f"!{conversion}" if conversion else "") + (
            f":{spec}" if spec else "") + "}"
        if name not in CASE_LINK_FIELDS:
            raise ConfigError(f"CASE_LINK_TEMPLATE: unknown field {written}: only "
                              f"{{{CASE_LINK_FIELDS[0]}}} and {{{CASE_LINK_FIELDS[1]}}}")
        if spec or conversion:
            raise ConfigError(f"CASE_LINK_TEMPLATE: {written}: write the field plainly, as "
                              f"{{{name}}}")


def _check_webhook(url: str) -> None:
    """https, or http to a loopback host, by the host the URL really names (never a prefix
    test: ``http://localhost.evil.com`` and ``http://127.0.0.1@evil.com`` go elsewhere). The
    URL itself is never shown: its path or query carries the webhook's key."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError as error:
        raise ConfigError(f"ESCALATION_WEBHOOK_URL: not a URL ({error})") from None
    scheme = parts.scheme.lower()
    if not host or not (scheme == "https" or (scheme == "http" and is_loopback(host))):
        raise ConfigError("ESCALATION_WEBHOOK_URL: must be an https URL (plain http only to a "
                          f"loopback address); got {scheme} to host {host!r}")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (127.0.0.0/8, ::1), nothing that merely starts
    like one."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_database(path: Path, *, usable: bool) -> None:
    """A file, not ``:memory:`` or a directory; when it is used (``usable``), in a directory
    that exists or can be created, and that this user may write (SQLite writes its ``-wal``
    and ``-shm`` files next to the database). Nothing is created here."""
    if str(path) == ":memory:":
        raise ConfigError(f"REMEDIATION_DB: {str(path)!r} is not a file: the queue and journal "
                          "must outlive the process")
    if _is_dir(path):
        raise ConfigError(f"REMEDIATION_DB: {str(path)!r} is a directory, not a database file")
    if not usable:
        return
    ancestor = path.parent
    while not _exists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent  # the directories up to here would be created
    if not _is_dir(ancestor):
        raise ConfigError(f"REMEDIATION_DB: {str(path)!r} cannot be created: {str(ancestor)!r} "
                          "is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"REMEDIATION_DB: {str(path)!r} cannot be written: this user may not "
                          f"write in {str(ancestor)!r}")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # not searchable: as good as absent for this user
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _titles(raw: str) -> tuple[str, ...]:
    titles = tuple(title.strip() for title in raw.split(";") if title.strip())
    return titles or DEFAULT_ALERT_TITLES


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name}: must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes")


def _int(env: Mapping[str, str], name: str, default: _D, low: int, high: int) -> int | _D:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    # ASCII digits only: str.isdigit() also accepts "²" (which int() refuses) and "٣" (which
    # int() reads as 3).
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ConfigError(f"{name}: must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


MAILBOX_ACCESS = ("tenant-wide", "exchange-rbac")


def _check_scope(unit_id: str | None, mailbox_access: str) -> None:
    """SCOPE_ADMINISTRATIVE_UNIT_ID is a unit's object id; MAILBOX_ACCESS=exchange-rbac
    scopes mailboxes to that same unit, so it needs one."""
    if unit_id is not None and not GUID.fullmatch(unit_id):
        raise ConfigError(f"SCOPE_ADMINISTRATIVE_UNIT_ID: {unit_id!r} is not an administrative "
                          "unit's object id (a GUID)")
    if mailbox_access not in MAILBOX_ACCESS:
        raise ConfigError(f"MAILBOX_ACCESS: {mailbox_access!r} is not one of "
                          f"{', '.join(MAILBOX_ACCESS)}")
    if mailbox_access == "exchange-rbac" and unit_id is None:
        raise ConfigError("MAILBOX_ACCESS: exchange-rbac scopes mailboxes to the administrative "
                          "unit of SCOPE_ADMINISTRATIVE_UNIT_ID, which is not set")
