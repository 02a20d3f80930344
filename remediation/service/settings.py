"""What the workflow is told by configuration (a plain value; no environment access here)."""

from dataclasses import dataclass
from datetime import timedelta

from remediation.domain.alerts import DEFAULT_ALERT_TITLES
from remediation.domain.leftovers import DEFAULT_COMPROMISE_WINDOW

MODES = ("enforce", "approve", "dry-run")
HYGIENE_MODES = ("disable", "report")
SIGNIN_CLEANUP_MODES = ("remove", "report")
RETURN_ACTIONS = ("escalate", "disable")
WEBHOOK_FORMATS = ("teams", "slack")  # remediation/service/escalations.py builds each
# A rate-limit block no compromise alert names (domain/rate_limits.py): explain it and change
# nothing, wait for a person's approval, or remediate it like any other block.
RATE_LIMIT_MODES = ("escalate", "approve", "remediate")
DEFAULT_APPROVAL_TIMEOUT = timedelta(hours=24)  # APPROVAL_TIMEOUT
# How long after the circuit breaker holds a case its grouped post waits for the storm's other
# holds (breaker_posts.py); never longer than the first verification delay, so compressed
# time (the demo, a sandbox quick start) compresses it too.
BREAKER_POST_WAIT = timedelta(minutes=2)


@dataclass(frozen=True)
class WorkflowSettings:
    verify_delays: tuple[timedelta, ...]
    mode: str = "enforce"
    hygiene: str = "disable"
    protected_group_ids: frozenset[str] = frozenset()
    max_resets_per_hour: int = 20
    tenant_domains: frozenset[str] = frozenset()  # empty: ask the directory
    case_link: str = "remediation status --user {user}"
    webhook_format: str = "teams"
    # What an alert a request names must be to be commented on (as the poll decides).
    alert_titles: tuple[str, ...] = DEFAULT_ALERT_TITLES
    # Additions to the account this long before the trouble started count as the attacker's.
    compromise_window: timedelta = DEFAULT_COMPROMISE_WINDOW
    signin_cleanup: str = "remove"  # sign-in methods and consents in the window
    return_action: str = "escalate"  # verification finds the attacker back: also "disable"
    rate_limit_blocks: str = "escalate"  # one of RATE_LIMIT_MODES
    # Only this administrative unit's members may be changed (service/scope.py).
    administrative_unit_id: str | None = None
    # How long a case waits for a person's approval before it escalates (the sweeper);
    # the "approval needed" notice says until when. None: it waits for ever.
    approval_timeout: timedelta | None = DEFAULT_APPROVAL_TIMEOUT
    # How long a worker's claim on a case lasts unless renewed (service/case_lease.py): the
    # message lock's length (LOCK_DURATION). None: case_lease.CASE_LEASE.
    case_lease: timedelta | None = None

    @property
    def merge_window(self) -> timedelta:
        """A finished case absorbs new requests for as long as it could still be verifying."""
        return self.verify_delays[-1]

    @property
    def breaker_post_wait(self) -> timedelta:
        """From a hold to the grouped post that names it (``BREAKER_POST_WAIT`` at most)."""
        return min(BREAKER_POST_WAIT, self.verify_delays[0])
