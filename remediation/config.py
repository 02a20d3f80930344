"""Settings from environment variables (the same names as the Azure app settings)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from remediation.domain.alerts import DEFAULT_ALERT_TITLES
from remediation.domain.durations import parse_delays, parse_duration
from remediation.service.settings import HYGIENE_MODES, MODES

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


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
    worker_concurrency: int = 8
    max_delivery_count: int = 10
    lock_duration: timedelta = timedelta(minutes=5)
    http_timeout: timedelta = timedelta(seconds=30)
    http_max_retries: int = 3
    alert_titles: tuple[str, ...] = DEFAULT_ALERT_TITLES
    alert_lookback: timedelta = timedelta(hours=1)
    alert_poll_interval: timedelta = timedelta(minutes=2)
    sweep_restricted_users: bool = True
    journal_table_endpoint: str | None = None
    journal_table_connection_string: str | None = field(default=None, repr=False)
    journal_table_name: str = "remediationjournal"
    mailbox_hygiene: str = "disable"
    protected_group_ids: frozenset[str] = frozenset()
    max_remediations_per_hour: int = 20
    escalation_webhook_url: str | None = field(default=None, repr=False)
    tenant_domains: frozenset[str] = frozenset()
    case_link_template: str = "remediation status --user {user}"

    @property
    def uses_loopback_endpoints(self) -> bool:
        return all(_host(url) in LOOPBACK_HOSTS
                   for url in (self.graph_endpoint, self.exchange_endpoint))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        try:
            settings = cls(
                tenant_id=text("AZURE_TENANT_ID", ""),
                graph_endpoint=text("GRAPH_ENDPOINT", defaults.graph_endpoint).rstrip("/"),
                exchange_endpoint=text("EXCHANGE_ENDPOINT", defaults.exchange_endpoint).rstrip("/"),
                sandbox_token=env.get("SANDBOX_TOKEN") or None,
                mode=text("REMEDIATION_MODE", defaults.mode),
                verify_delays=parse_delays(text("VERIFY_DELAYS", "1h,4h,24h")),
                remediation_db=Path(text("REMEDIATION_DB", str(defaults.remediation_db))),
                remediation_queue=text("REMEDIATION_QUEUE", defaults.remediation_queue),
                verification_queue=text("VERIFICATION_QUEUE", defaults.verification_queue),
                service_bus_namespace=env.get(
                    "ServiceBusConnection__fullyQualifiedNamespace") or None,
                worker_concurrency=_int(env, "WORKER_CONCURRENCY", 8, 1, 256),
                max_delivery_count=_int(env, "MAX_DELIVERY_COUNT", 10, 1, 2000),
                lock_duration=parse_duration(text("LOCK_DURATION", "5m")),
                http_timeout=parse_duration(text("HTTP_TIMEOUT", "30s")),
                http_max_retries=_int(env, "HTTP_MAX_RETRIES", 3, 0, 10),
                alert_titles=_titles(env.get("ALERT_TITLES", "")),
                alert_lookback=parse_duration(text("ALERT_LOOKBACK", "1h")),
                alert_poll_interval=parse_duration(text("ALERT_POLL_INTERVAL", "2m")),
                sweep_restricted_users=_bool(env, "SWEEP_RESTRICTED_USERS", True),
                journal_table_endpoint=_table_endpoint(env),
                journal_table_connection_string=env.get("JOURNAL_TABLE_CONNECTION_STRING")
                or None,
                journal_table_name=text("JOURNAL_TABLE_NAME", defaults.journal_table_name),
                mailbox_hygiene=text("MAILBOX_HYGIENE", defaults.mailbox_hygiene),
                protected_group_ids=_set(env.get("PROTECTED_GROUP_IDS", "")),
                max_remediations_per_hour=_int(env, "MAX_REMEDIATIONS_PER_HOUR", 20, 0, 100000),
                escalation_webhook_url=env.get("ESCALATION_WEBHOOK_URL", "").strip() or None,
                tenant_domains=_set(env.get("TENANT_DOMAINS", "")),
                case_link_template=text("CASE_LINK_TEMPLATE", defaults.case_link_template),
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"REMEDIATION_MODE must be one of {', '.join(MODES)}")
        if self.mailbox_hygiene not in HYGIENE_MODES:
            raise ConfigError(f"MAILBOX_HYGIENE must be one of {', '.join(HYGIENE_MODES)}")
        if self.escalation_webhook_url and not self.escalation_webhook_url.startswith(
                ("https://", "http://127.0.0.1", "http://localhost")):
            raise ConfigError("ESCALATION_WEBHOOK_URL must be an https URL")
        for name, url in (("GRAPH_ENDPOINT", self.graph_endpoint),
                          ("EXCHANGE_ENDPOINT", self.exchange_endpoint)):
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConfigError(f"{name} must be an http(s) URL, got {url!r}")
            if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
                raise ConfigError(f"{name} must use https (plain http only for loopback)")
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


def _titles(raw: str) -> tuple[str, ...]:
    titles = tuple(title.strip() for title in raw.split(";") if title.strip())
    return titles or DEFAULT_ALERT_TITLES


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)
