"""Bad input, at every door: generated and mutated bodies against every parser and handler.

The requests queue, the verifications queue, the HTTP alert push and the Defender stream
are doors anyone with send rights can knock on. Whatever arrives must be refused with a
reason a person can read (never a crash, never a call to the tenant), and whatever is
accepted must survive the trip through the queue unchanged.

The properties leave out the inputs of the bugs found (and fixed) earlier, which the
tests at the end of the file (integers longer than 4300 digits, lone surrogates in ``str``
bodies, ...), so that each bug fails one test instead of hiding every property. When a bug
regression tests at the end of the file pin one by one.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from remediation.domain.alert_ids import is_provider_guid
from remediation.domain.alerts import (
    DEFAULT_ALERT_TITLES,
    OFFICE_365_SOURCE,
    alert_request_id,
    find_sender,
    is_alert_id,
    is_outbound_spam,
    parse_alert,
    request_for_alert,
    sender_evidence,
)
from remediation.domain.cases import Case, CaseState
from remediation.domain.display import shown
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import (
    MAX_ALERT_IDS,
    MAX_BODY_BYTES,
    SOURCES,
    RemediationRequest,
    normalise_user,
    parse_request,
)
from remediation.domain.streaming import (
    ALERT_EVIDENCE,
    ALERT_INFO,
    OFFICE_365_DISPLAY_NAME,
    alert_hints,
)
from remediation.service.handler import Delivery, MessageHandler
from remediation.service.intake import Intake, IntakeSettings
from remediation.service.messages import (
    ALERT_PHASES,
    FOLLOW_UP_KINDS,
    AlertUpdate,
    BreakerPost,
    VerificationCheck,
    parse_approval,
    parse_follow_up,
)
from remediation.service.push import (
    MAX_PUSH_BYTES,
    PushResponse,
    handle_alert_push,
    handle_stream_events,
)
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import (
    FakeAlertNotifier,
    FakeAlertSource,
    FakeAlertUpdater,
    FakeRequestSender,
    FakeTenant,
    alert_json,
    mailbox_evidence,
    user_evidence,
)

settings.register_profile(
    "bad-input", max_examples=500, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example])
BAD_INPUT = settings.get_profile("bad-input")


def examples(count: int) -> settings:
    """The bad-input profile (repeatable: derandomized, no deadline) with ``count`` examples."""
    return settings(BAD_INPUT, max_examples=count)


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


ROB = "rob@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
TITLES = DEFAULT_ALERT_TITLES
FIELDS = ("schema", "user", "reason", "requested_by", "alert_ids", "force", "source",
          "request_id", "evidence_at")
MAILBOX = "#microsoft.graph.security.mailboxEvidence"
USER = "#microsoft.graph.security.userEvidence"

# -- strategies: the raw material ----------------------------------------------------------

TOKEN_CHARS = string.ascii_letters + string.digits + "._:@/+=-"
TOKEN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,200}")
CONTROL_CHARS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + ["\u2028", "\u2029"]
# Whitespace str.strip() removes, including the control-ish separators \x1c-\x1f and \x85.
PADDING = ["", " ", "\t", "\n", " \r\n ", "\x1c", "\x85", "\u2028", "\u3000"]

# Text as JSON carries it (no lone surrogates: a regression test below pins their refusal).
any_text = st.text(st.characters(codec="utf-8"), max_size=40)
clean_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12)

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=40)
# Plain alert ids (remediation.domain.alerts.ALERT_ID), and tokens that are not: the doors
# that put an id into a Graph URL take only the former.
plain_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}", fullmatch=True)
not_token_chars = st.one_of(st.sampled_from(" !\"#$%&'()*,;<>?[\\]^`{|}~\t\n\x00\x7f"),
                            st.characters(codec="utf-8", min_codepoint=0x80))
# Graph ids as they stay (a provider GUID becomes "fa" + the GUID: tested on its own).
graph_ids = plain_ids.filter(lambda text: not is_provider_guid(text))
bad_tokens = st.one_of(
    st.just(""),
    st.text(TOKEN_CHARS, min_size=201, max_size=230),
    st.tuples(st.text(TOKEN_CHARS, max_size=8), not_token_chars,
              st.text(TOKEN_CHARS, max_size=8)).map("".join),
)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
addresses = st.builds(
    lambda local, domain, tld: f"{local}@{'.'.join(domain)}.{tld}",
    st.text(string.ascii_lowercase + string.digits + "._+-!#$%&'*/=?^`{|}~", min_size=1,
            max_size=24),
    st.lists(labels, min_size=1, max_size=3),
    st.text(string.ascii_lowercase, min_size=2, max_size=6))
normalised_users = st.one_of(addresses, st.uuids().map(str))
# What people type: any letter case, stray whitespace around.
typed_users = st.builds(
    lambda user, case, left, right: left + getattr(user, case)() + right,
    normalised_users, st.sampled_from(["lower", "upper", "title", "swapcase"]),
    st.sampled_from(PADDING), st.sampled_from(PADDING))


JSON_KINDS: dict[type, st.SearchStrategy[Any]] = {
    type(None): st.none(), bool: st.booleans(), int: st.integers(), float: st.floats(),
    str: any_text, list: st.lists(json_values, max_size=3),
    dict: st.dictionaries(any_text, json_values, max_size=3)}


def non(*kinds: type) -> st.SearchStrategy[Any]:
    """JSON values of none of ``kinds`` (as isinstance sees it: ``non(int)`` has no bools)."""
    return st.one_of([strategy for kind, strategy in JSON_KINDS.items()
                      if not issubclass(kind, kinds)])


def with_control(limit: int) -> st.SearchStrategy[str]:
    """Text of at most ``limit`` characters with a control character somewhere in it."""
    half = st.text(clean_chars, max_size=limit // 2 - 1)
    return st.tuples(half, st.sampled_from(CONTROL_CHARS), half).map("".join)


def too_long(limit: int) -> st.SearchStrategy[str]:
    return st.integers(limit + 1, limit * 2).map(lambda n: "x" * n)


# -- strategies: requests -------------------------------------------------------------------


def _graph_time(moment: datetime, digits: int, offset: str) -> str:
    """As Graph writes createdDateTime: 0 to 7 fractional digits, Z or an offset."""
    fraction = f"{moment.microsecond:06d}7"[:digits]
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{fraction}" if digits else "") + offset


evidence_times = st.builds(
    _graph_time, st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(9990, 1, 1)),
    st.integers(0, 7), st.sampled_from(["Z", "+00:00", "+02:00", "-05:30", "+14:00"]))
wrong_evidence_times = st.one_of(
    non(str, type(None)),
    st.sampled_from(["", "yesterday", "2024-05-01", "2024-05-01T09:00:00",
                     "2024-05-01 09:00:00Z", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z",
                     "2024-13-01T09:00:00Z", "2024-05-01T09:00:00.12345678Z",
                     "2024-05-01T09:00:00Z\n"]),
    any_text.filter(lambda text: not re.match(r"\d{4}-", text)))

VALID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "schema": st.just(1),
    "source": st.sampled_from(SOURCES),
    "reason": st.none() | st.text(clean_chars, max_size=1000),
    "requested_by": st.none() | st.text(clean_chars, max_size=256),
    "alert_ids": st.none() | graph_ids | st.lists(graph_ids, max_size=10),
    "force": st.booleans(),
    "request_id": st.none() | st.text(TOKEN_CHARS, min_size=1, max_size=200),
    "evidence_at": st.none() | evidence_times,
}

# One wrong value per field, each wrong by construction (never accidentally valid).
WRONG_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "schema": json_values.filter(lambda v: isinstance(v, bool) or v != 1),
    "user": st.one_of(
        non(str),
        any_text.filter(lambda s: "@" not in s and "-" not in s),  # neither address nor id
        st.integers(243, 300).map(lambda n: "r" * n + "@contoso.com")),
    "source": json_values.filter(lambda v: v not in SOURCES),
    "reason": st.one_of(non(str, type(None)), too_long(1000), with_control(1000)),
    "requested_by": st.one_of(non(str, type(None)), too_long(256), with_control(256)),
    "alert_ids": st.one_of(
        non(str, list, type(None)),
        bad_tokens,
        st.tuples(st.lists(graph_ids, max_size=3), bad_tokens | non(str),
                  st.lists(graph_ids, max_size=3)).map(lambda t: [*t[0], t[1], *t[2]]),
        st.integers(MAX_ALERT_IDS + 1, MAX_ALERT_IDS + 20).map(
            lambda n: [f"alert-{i}" for i in range(n)])),
    "force": non(bool),
    "request_id": non(str, type(None)) | bad_tokens,
    "evidence_at": wrong_evidence_times,
}


@st.composite
def valid_request_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {"user": draw(typed_users)}
    for name, values in VALID_VALUES.items():
        if draw(st.booleans()):
            fields[name] = draw(values)
    if fields.get("force") is True and fields.get("source", "manual") != "manual":
        del fields["force"]  # only a manual request may force (a mutation below tries it)
    return dict(draw(st.permutations(list(fields.items()))))


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid request with exactly one thing wrong, and the words its refusal must use."""
    fields = draw(valid_request_fields())
    mutation = draw(st.sampled_from([*WRONG_VALUES, "extra field", "no user",
                                     "forced elsewhere"]))
    if mutation == "forced elsewhere":
        fields.update(force=True, source=draw(st.sampled_from(["alert", "restricted-list"])))
        return fields, "'force' is accepted only on manual requests"
    if mutation == "extra field":
        fields[draw(any_text.filter(lambda k: k not in FIELDS))] = draw(json_values)
        return fields, "unknown field"
    if mutation == "no user":
        del fields["user"]
        return fields, "'user' is required"
    fields[mutation] = draw(WRONG_VALUES[mutation])
    return fields, "schema" if mutation == "schema" else f"'{mutation}'"


@st.composite
def field_soup(draw: st.DrawFn) -> dict[str, Any]:
    """Dicts with the request's field names (and a few others) holding anything at all."""
    fields: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True)):
        plausible = typed_users if name == "user" else VALID_VALUES[name]
        # Mostly plausible values, so that a fair share of the soup is a valid request.
        fields[name] = draw(plausible if draw(st.integers(0, 9)) < 8 else
                            st.one_of(WRONG_VALUES[name], json_values))
    if draw(st.integers(0, 4)) == 0:
        fields[draw(any_text)] = draw(json_values)
    return fields


def as_body(fields: Mapping[str, Any], form: str) -> bytes | str | Mapping[str, Any]:
    if form == "mapping":
        return fields
    if form == "str":
        return json.dumps(fields)
    return json.dumps(fields, ensure_ascii=False).encode()


forms = st.sampled_from(["mapping", "str", "bytes"])


@st.composite
def deep_bodies(draw: st.DrawFn) -> bytes:
    """Nesting up to 3000 levels, at the top or in a field where no nesting is valid."""
    depth = draw(st.integers(1, 3000))
    opener, leaf, closer = draw(st.sampled_from([("[", "", "]"), ('{"a":', "1", "}")]))
    nested = opener * depth + leaf + closer * depth
    where = draw(st.sampled_from(["top", "schema", "user", "reason", "requested_by", "force",
                                  "source", "request_id", "evidence_at", "x"]))
    if where == "top":
        return nested.encode()
    return f'{{"user":"{ROB}","{where}":{nested}}}'.encode()


# Not b"\xed\xa0\x80" (an encoded surrogate): a regression test at the end pins it.
INVALID_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xc3(", b"\xe2\x82",
                b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80"]


@st.composite
def invalid_utf8_bodies(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(["user", "reason", "requested_by", "request_id"]))
    before = draw(st.text(string.ascii_letters, max_size=10)).encode()
    bad = draw(st.sampled_from(INVALID_UTF8))
    return b'{"user":"rob@contoso.com","' + field.encode() + b'":"' + before + bad + b'"}'


@st.composite
def raw_control_bodies(draw: st.DrawFn) -> bytes:
    """A control character written raw (not escaped) inside a JSON string."""
    field = draw(st.sampled_from(["reason", "requested_by"]))
    control = draw(st.sampled_from(CONTROL_CHARS))
    return f'{{"user":"{ROB}","{field}":"a{control}b"}}'.encode()


def oversized(limit: int) -> st.SearchStrategy[bytes]:
    """Bodies around and far above ``limit`` bytes (a long reason)."""
    return st.integers(limit - 64, limit * 4).map(
        lambda n: b'{"user":"rob@contoso.com","reason":"' + b"x" * n + b'"}')


def dumped(value: Any) -> bytes:
    return json.dumps(value).encode()


request_bodies = st.one_of(
    st.binary(max_size=256),
    any_text.map(str.encode),
    json_values.map(dumped),
    field_soup().map(dumped),
    mutated_requests().map(lambda pair: dumped(pair[0])),
    deep_bodies(),
    invalid_utf8_bodies(),
    raw_control_bodies(),
    oversized(MAX_BODY_BYTES),
)

# -- strategies: follow-up messages (the verifications queue) -------------------------------

case_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)
follow_ups = st.one_of(
    st.builds(VerificationCheck, case_id=case_ids, user=normalised_users,
              attempt=st.integers(0, 99)),
    st.builds(AlertUpdate, case_id=case_ids, user=normalised_users,
              phase=st.sampled_from(ALERT_PHASES), alert_count=st.integers(0, 1000)),
    st.builds(BreakerPost, case_id=case_ids, user=normalised_users))

WRONG_FOLLOW_UP: dict[str, st.SearchStrategy[Any]] = {
    "kind": json_values.filter(lambda v: v not in FOLLOW_UP_KINDS),
    "case_id": st.one_of(non(str), st.just(""), st.text(min_size=65, max_size=80)),
    "user": WRONG_VALUES["user"],
    "attempt": st.one_of(non(int), st.booleans(), st.integers(max_value=-1),
                         st.integers(min_value=100)),
    "phase": json_values.filter(lambda v: v not in ALERT_PHASES),
    "alert_count": st.one_of(non(int), st.booleans(), st.integers(max_value=-1),
                             st.integers(min_value=1001)),
}


@st.composite
def mutated_follow_ups(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    fields = json.loads(draw(follow_ups).to_json())
    names = [name for name in WRONG_FOLLOW_UP if name in fields]
    name = draw(st.sampled_from(names))
    if name != "alert_count" and draw(st.booleans()):
        del fields[name]
    else:
        fields[name] = draw(WRONG_FOLLOW_UP[name])
    return fields, "kind" if name == "kind" else f"'{name}'"


follow_up_bodies = st.one_of(
    st.binary(max_size=256),
    json_values.map(dumped),
    mutated_follow_ups().map(lambda pair: dumped(pair[0])),
    follow_ups.map(lambda message: message.to_json().encode()),  # valid, but no such case
    deep_bodies(),
    invalid_utf8_bodies(),
    oversized(MAX_BODY_BYTES),
)

# -- strategies: alerts_v2 ------------------------------------------------------------------

maybe_users = st.one_of(typed_users, typed_users, st.none(), st.just(""), any_text, non(str))
titles = st.builds(lambda title, case, left, right: left + getattr(title, case)() + right,
                   st.sampled_from(TITLES), st.sampled_from(["lower", "upper", "title"]),
                   st.sampled_from(PADDING), st.sampled_from(PADDING))
evidence_types = st.sampled_from([MAILBOX, USER, "#microsoft.graph.security.ipEvidence",
                                  "#microsoft.graph.security.analyzedMessageEvidence"])
odd_evidence = st.fixed_dictionaries(
    {"@odata.type": evidence_types | json_values},
    optional={"primaryAddress": maybe_users, "upn": maybe_users,
              "userAccount": json_values | st.fixed_dictionaries(
                  {}, optional={"userPrincipalName": maybe_users,
                                "azureAdUserId": maybe_users})})
evidence_items = st.one_of(
    st.builds(mailbox_evidence, maybe_users, upn=maybe_users, account_upn=maybe_users,
              object_id=maybe_users),
    st.builds(user_evidence, maybe_users, maybe_users),
    odd_evidence,
    json_values)
evidence_lists = st.lists(evidence_items, max_size=6)


@st.composite
def raw_alerts(draw: st.DrawFn, alert_id: st.SearchStrategy[Any] | None = None
               ) -> dict[str, Any]:
    """alerts_v2-shaped dicts: the real shape, with any field possibly replaced by junk."""
    raw = alert_json("placeholder", draw(evidence_lists),
                     title=draw(st.one_of(titles, titles, any_text)),
                     status=draw(st.sampled_from(["new", "inProgress", "resolved"]) | any_text),
                     service_source=draw(st.one_of(
                         st.just(OFFICE_365_SOURCE), st.just(OFFICE_365_SOURCE.upper()),
                         st.just("microsoftDefenderForEndpoint"), any_text)))
    raw["id"] = draw(alert_id if alert_id is not None else
                     st.one_of(tokens, bad_tokens, any_text, non(str)))
    if draw(st.integers(0, 3)) == 0:
        for name in draw(st.lists(st.sampled_from(["title", "status", "serviceSource",
                                                   "evidence"]), unique=True, min_size=1,
                                  max_size=2)):
            raw[name] = draw(json_values)
    return raw


# -- strategies: pushes and the Defender stream ---------------------------------------------

pushed_ids = st.one_of(plain_ids, plain_ids, tokens, bad_tokens, json_values)
push_shapes = st.one_of(
    pushed_ids,
    st.lists(pushed_ids | st.fixed_dictionaries({"id": pushed_ids}), max_size=5),
    st.fixed_dictionaries({"alertId": pushed_ids}),
    st.fixed_dictionaries({"alertIds": st.lists(pushed_ids, max_size=5) | json_values}),
    st.fixed_dictionaries({"id": pushed_ids}, optional={"title": any_text}),
    st.fixed_dictionaries({"value": st.lists(st.fixed_dictionaries({"id": pushed_ids}),
                                             max_size=5) | json_values}),
    st.integers(MAX_PUSH_BYTES // 200, MAX_PUSH_BYTES // 10).map(
        lambda n: [f"alert-{i}" for i in range(n)]),  # more ids than one push may carry
)
push_bodies = st.one_of(
    push_shapes.map(dumped),
    st.binary(max_size=256),
    deep_bodies(),
    invalid_utf8_bodies(),
    oversized(MAX_PUSH_BYTES),
)
json_types = st.sampled_from(["application/json", "application/json; charset=utf-8",
                              " Application/JSON ;q=1"])
content_types = st.one_of(
    json_types, json_types, json_types,
    st.none(),
    st.sampled_from(["text/plain", "application/jsonx", "multipart/form-data; boundary=x",
                     "application/json+x", ""]),
    any_text)


@st.composite
def well_formed_pushes(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """Every documented push shape, with good ids; and the ids in order, once each."""
    ids = draw(st.lists(graph_ids, min_size=1, max_size=8))
    shape = draw(st.sampled_from(["id", "list", "alertId", "alertIds", "alert", "alerts",
                                  "value"]))
    body: Any = {
        "id": ids[0],
        "list": ids,
        "alertId": {"alertId": ids[0]},
        "alertIds": {"alertIds": ids},
        "alert": {"id": ids[0], "title": TITLES[0]},
        "alerts": [{"id": alert_id} for alert_id in ids],
        "value": {"value": [{"id": alert_id} for alert_id in ids]},
    }[shape]
    expected = ids if shape in ("list", "alertIds", "alerts", "value") else ids[:1]
    return dumped(body), list(dict.fromkeys(expected))


OTHER_TITLE = "Email messages containing malicious URL removed after delivery"
SPOILERS: dict[str, st.SearchStrategy[Any]] = {
    "category": st.sampled_from([ALERT_INFO, ALERT_EVIDENCE, "AdvancedHunting-EmailEvents",
                                 ALERT_INFO.lower()]) | json_values,
    "properties": non(dict),
    "AlertId": st.one_of(st.just(""), st.text(TOKEN_CHARS, min_size=201, max_size=210),
                         tokens, st.sampled_from([".", "..", "../users", "fa/../x"]),
                         non(str)),
    "ServiceSource": st.sampled_from([OFFICE_365_SOURCE, "Microsoft Defender for Endpoint",
                                      OFFICE_365_DISPLAY_NAME.lower()]) | json_values,
    "Title": st.one_of(st.just(OTHER_TITLE), any_text, non(str)),
    "EntityType": st.sampled_from(["Ip", "Url", "MailMessage", "Users"]) | non(str),
}


@st.composite
def stream_records(draw: st.DrawFn) -> Any:
    """Defender XDR records: good hints, hints with one or two things spoiled, and junk."""
    kind = draw(st.sampled_from(["info", "evidence", "junk"]))
    if kind == "junk":
        return draw(json_values)
    properties: dict[str, Any] = {"AlertId": draw(plain_ids),
                                  "ServiceSource": OFFICE_365_DISPLAY_NAME}
    if kind == "info":
        properties["Title"] = draw(titles)
    else:
        properties["EntityType"] = draw(st.sampled_from(["User", "Mailbox", "mailbox", "USER"]))
    record: dict[str, Any] = {"category": ALERT_INFO if kind == "info" else ALERT_EVIDENCE,
                              "properties": properties}
    for spoiled in draw(st.lists(st.sampled_from([*SPOILERS, "drop"]), max_size=2)):
        if spoiled == "drop":
            properties.pop(draw(st.sampled_from(sorted(properties))), None)
        elif spoiled in ("category", "properties"):
            record[spoiled] = draw(SPOILERS[spoiled])
        else:
            properties[spoiled] = draw(SPOILERS[spoiled])
    return record


readable_events = st.lists(stream_records(), max_size=5).map(lambda records: {"records": records})
unreadable_events = st.one_of(
    st.binary(max_size=128),
    json_values,
    st.fixed_dictionaries({"records": non(list)}),
    invalid_utf8_bodies(),
    deep_bodies())


@st.composite
def stream_batches(draw: st.DrawFn) -> list[bytes | str]:
    events: list[bytes | str] = []
    for _ in range(draw(st.integers(0, 5))):
        event = draw(st.one_of(readable_events.map(dumped), unreadable_events.map(
            lambda value: value if isinstance(value, bytes) else dumped(value))))
        events.append(event.decode() if draw(st.booleans()) and _utf8(event) else event)
    return events


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


# -- the world the handlers run in ----------------------------------------------------------


@dataclass
class World:
    """The workflow, the message handler and intake, on fakes that record every call."""

    tenant: FakeTenant
    alerts: FakeAlertSource
    sender: FakeRequestSender
    updater: FakeAlertUpdater
    notifier: FakeAlertNotifier
    workflow: RemediationWorkflow
    handler: MessageHandler
    intake: Intake

    def assert_tenant_untouched(self, *, lookups: list[str] | None = None) -> None:
        """No directory, Exchange, scheduler or alert call; ``lookups`` alert reads at most."""
        assert self.tenant.events == []
        assert self.tenant.directory.calls == []
        assert self.tenant.directory.passwords == []
        assert self.tenant.exchange.lookups == []
        assert self.tenant.exchange.unblocks == []
        assert self.tenant.scheduler.scheduled == []
        assert self.updater.attempts == []
        assert self.notifier.updates == []
        assert self.alerts.since == []
        assert self.alerts.lookups == (lookups or [])
        assert self.sender.sent == []


def make_world(alerts: list[dict[str, Any]] | None = None, mode: str = "enforce") -> World:
    """Rob exists and is blocked, so any step that did run would show in the fakes."""
    tenant = FakeTenant()
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    source, sender = FakeAlertSource(alerts), FakeRequestSender()
    updater, notifier = FakeAlertUpdater(), FakeAlertNotifier()
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode=mode), alerts=updater,
        notifier=notifier)
    intake = Intake(alerts=source, exchange=tenant.exchange, journal=tenant.journal,
                    requests=sender, workflow=workflow, clock=tenant.clock,
                    settings=IntakeSettings(titles=TITLES, lookback=timedelta(hours=2)))
    return World(tenant, source, sender, updater, notifier, workflow, MessageHandler(workflow),
                 intake)


def delivery(body: bytes) -> Delivery:
    return Delivery(body=body, message_id="msg-1", delivery_count=1, max_delivery_count=5)


def assert_reason(reason: str) -> None:
    """A reason an operator can read: not blank, one line, nothing unprintable."""
    assert reason.strip(), "empty reason"
    assert reason.isprintable(), f"unprintable reason {reason!r}"


def refusal(parse: Callable[[Any], object], body: Any) -> str | None:
    """The reason ``parse`` refuses ``body`` with, or None if it accepts it."""
    try:
        parse(body)
    except InvalidRequest as error:
        reason, message = error.reason, str(error)
    else:
        return None
    assert message == reason
    assert_reason(reason)
    return reason


async def assert_only_rejection(world: World, case: Case, reason: str) -> None:
    """``case`` is the one journal entry: rejected, with ``reason``, nothing else done."""
    assert case.state is CaseState.REJECTED
    assert case.reason == reason
    [stored] = await world.tenant.journal.list_cases()
    assert stored.case_id == case.case_id
    assert stored.state is CaseState.REJECTED
    assert stored.reason == reason
    assert [(step.name, step.detail) for step in stored.steps] == [("rejected", reason)]
    # Who it was about, as far as anyone can tell: short and printable, whatever was sent.
    assert stored.user.isprintable()
    assert 0 < len(stored.user) <= 254
    world.assert_tenant_untouched()


def assert_accepted_request(request: RemediationRequest) -> None:
    """What the worker may rely on in any request parse_request returns."""
    assert normalise_user(request.user) == request.user
    for text, limit in ((request.reason, 1000), (request.requested_by, 256)):
        assert text is None or (0 < len(text) <= limit and text == text.strip()
                                and not any(c in text for c in CONTROL_CHARS))
    assert len(request.alert_ids) <= MAX_ALERT_IDS
    assert len(set(request.alert_ids)) == len(request.alert_ids)
    assert all(is_alert_id(alert_id) for alert_id in request.alert_ids)
    assert request.source in SOURCES
    assert isinstance(request.force, bool)
    assert not request.force or request.source == "manual"
    assert request.request_id is None or TOKEN.fullmatch(request.request_id)


def assert_round_trip(request: RemediationRequest) -> None:
    """The queue body of a request reads back as the very same request."""
    body = request.to_json()
    assert len(body.encode()) <= MAX_BODY_BYTES
    assert parse_request(body) == request
    assert parse_request(body.encode()) == request
    assert parse_request(json.loads(body)) == request


# == parse_request ==========================================================================


@examples(1000)
@given(body=st.one_of(request_bodies, any_text, st.dictionaries(any_text, json_values),
                      field_soup()))
@example(body=b"")
@example(body=b"\xef\xbb\xbf{}")  # a UTF-8 byte order mark
@example(body="[" * 100_000)
@example(body={"user": ROB, "schema": float("nan")})
@example(body={"user": ROB, "schema": True})
@example(body={"user": ROB, "alert_ids": []})
def test_parse_request_accepts_only_what_it_can_vouch_for_and_refuses_the_rest(
        body: bytes | str | Mapping[str, Any]) -> None:
    try:
        request = parse_request(body)
    except InvalidRequest as error:
        assert_reason(error.reason)
        event("refused")
        return
    event("accepted")
    assert_accepted_request(request)
    assert_round_trip(request)


@examples(1000)
@given(mutated=mutated_requests(), form=forms)
def test_a_request_with_one_thing_wrong_is_refused_naming_what_is_wrong(
        mutated: tuple[dict[str, Any], str], form: str) -> None:
    fields, blamed = mutated
    body = as_body(fields, form)

    reason = refusal(parse_request, body)

    assert reason is not None, f"accepted {body!r}"
    size = len(body.encode() if isinstance(body, str) else body) if form != "mapping" else 0
    if size > MAX_BODY_BYTES:
        assert reason == f"body is {size} bytes; the limit is {MAX_BODY_BYTES}"
    else:
        assert blamed in reason


@examples(1000)
@given(fields=valid_request_fields(), form=forms)
@example(fields={"user": " Rob@Contoso.COM\u2028", "reason": "\u3000 spam  ",
                 "alert_ids": ["a", "b", "a"]}, form="bytes")
@example(fields={"user": ROB, "reason": "\U0001f4e7" * 1000, "requested_by": "\U0001f600" * 256,
                 "alert_ids": [f"{i}" + "x" * 39 for i in range(10)], "request_id": "r" * 200,
                 "source": "manual", "force": True}, form="str")
def test_a_valid_request_is_normalised_and_round_trips_through_the_queue(
        fields: dict[str, Any], form: str) -> None:
    request = parse_request(as_body(fields, form))

    assert request.user == fields["user"].strip().lower()
    assert request.source == fields.get("source", "manual")
    assert request.force is fields.get("force", False)
    assert request.request_id == fields.get("request_id")
    ids = fields.get("alert_ids") or []
    assert request.alert_ids == tuple(dict.fromkeys([ids] if isinstance(ids, str) else ids))
    assert request.reason == ((fields.get("reason") or "").strip() or None)
    assert_accepted_request(request)
    assert_round_trip(request)


@examples(300)
@given(body=st.one_of(deep_bodies(), invalid_utf8_bodies(), raw_control_bodies(),
                      oversized(MAX_BODY_BYTES)),
       as_text=st.booleans())
def test_deep_nesting_invalid_utf8_raw_control_characters_and_huge_bodies_are_refused(
        body: bytes, as_text: bool) -> None:
    text = body.decode() if as_text and _utf8(body) else body

    reason = refusal(parse_request, text)

    assert reason is not None
    if len(body) > MAX_BODY_BYTES:
        assert reason == f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"


# == the requests queue: MessageHandler.on_request ==========================================


@examples(500)
@given(body=request_bodies)
@example(body=b"\xff\xfe{\x00}\x00")  # UTF-16 that decodes to an empty object
@example(body=b'{"user": "rob@contoso.com", "force": "true"}')
@example(body=b'{"user": "rob@contoso.com\\n2026-01-01 INFO forged log line"}')
def test_the_worker_journals_every_invalid_request_as_rejected_and_touches_nothing(
        body: bytes) -> None:
    expected = refusal(parse_request, body)
    event("valid" if expected is None else "invalid")
    if expected is None:  # a valid request: that is the workflow tests' business
        return

    async def scenario() -> None:
        world = make_world()
        case = await world.handler.on_request(delivery(body))
        await assert_only_rejection(world, case, expected)

    run(scenario())


# == the verifications queue: parse_follow_up and MessageHandler.on_verification ===========


@examples(500)
@given(message=follow_ups)
def test_a_follow_up_message_round_trips_through_the_queue(
        message: VerificationCheck | AlertUpdate | BreakerPost) -> None:
    assert parse_follow_up(message.to_json()) == message
    assert parse_follow_up(message.to_json().encode()) == message


@examples(500)
@given(mutated=mutated_follow_ups())
def test_a_follow_up_with_one_thing_wrong_is_refused_naming_what_is_wrong(
        mutated: tuple[dict[str, Any], str]) -> None:
    fields, blamed = mutated

    reason = refusal(parse_follow_up, dumped(fields))

    assert reason is not None, f"accepted {fields!r}"
    assert blamed in reason


@examples(500)
@given(body=st.one_of(follow_up_bodies, request_bodies, any_text))
def test_parse_follow_up_raises_nothing_but_invalid_request(body: bytes | str) -> None:
    try:
        message = parse_follow_up(body)
    except InvalidRequest as error:
        assert_reason(error.reason)
        return
    assert parse_follow_up(message.to_json()) == message


@examples(500)
@given(body=follow_up_bodies)
def test_the_verifier_rejects_bad_or_orphan_follow_ups_and_touches_nothing(body: bytes) -> None:
    async def scenario() -> None:
        world = make_world()
        case = await world.handler.on_verification(delivery(body))
        assert case.reason is not None
        assert_reason(case.reason)
        parsed = refusal(parse_follow_up, body)
        event("refused by the parser" if parsed is not None else "about no known case")
        if parsed is not None:
            assert case.reason == parsed
        else:  # well formed, but about a case that does not exist
            assert case.reason.startswith("no case ")
        await assert_only_rejection(world, case, case.reason)

    run(scenario())


# == approvals on the requests queue: parse_approval and MessageHandler.on_request ==========

approvers = st.one_of(st.text(clean_chars, max_size=256), with_control(256), too_long(256),
                      st.sampled_from(PADDING), non(str))
approval_users = st.one_of(st.just(ROB), st.just(" Rob@Contoso.COM "), st.just(ROB_ID),
                           normalised_users)


def _plain_name(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= 256 and bool(value.strip())
            and not any(c in value for c in CONTROL_CHARS))


@examples(500)
@given(approved_by=approvers)
@example(approved_by="lead\x1b[2J\x1b[Hremediation: case approved")
@example(approved_by="lead\u2028forged line")
def test_parse_approval_accepts_only_a_plain_approver_name_and_says_why_not(
        approved_by: Any) -> None:
    fields = {"schema": 1, "kind": "approve", "case_id": "c1", "user": ROB,
              "approved_by": approved_by}

    reason = refusal(parse_approval, fields)

    if _plain_name(approved_by):
        assert reason is None
        approval = parse_approval(fields)
        assert approval.approved_by == approved_by.strip()
        assert parse_approval(json.loads(approval.to_json())) == approval
    else:
        assert reason is not None
        assert "'approved_by'" in reason


@examples(200)
@given(user=approval_users, approved_by=st.one_of(st.just("security lead"), approvers))
def test_an_approval_lets_a_waiting_case_run_only_for_its_user_and_a_plain_approver(
        user: str, approved_by: Any) -> None:
    async def scenario() -> None:
        world = make_world(mode="approve")
        waiting = await world.workflow.remediate(RemediationRequest(
            user=ROB, source="alert", request_id="alert-req"))
        assert waiting.state is CaseState.AWAITING_APPROVAL
        body = dumped({"schema": 1, "kind": "approve", "case_id": waiting.case_id,
                       "user": user, "approved_by": approved_by})

        answer = await world.handler.on_request(delivery(body))

        stored = await world.tenant.journal.get_case(waiting.case_id)
        assert stored is not None
        ours = user.strip().lower() in (ROB, ROB_ID)
        if ours and _plain_name(approved_by):
            event("approved")
            assert stored.state is CaseState.AWAITING_VERIFICATION
            assert len(world.tenant.directory.passwords) == 1
            return
        event("refused")
        assert answer is not None
        assert answer.state is CaseState.REJECTED
        assert_reason(answer.reason or "")
        assert stored.state is CaseState.AWAITING_APPROVAL
        assert world.tenant.directory.passwords == []
        for case in await world.tenant.journal.list_cases():
            assert all(step.detail.isprintable() for step in case.steps)

    run(scenario())


# == alerts_v2: parse_alert, find_sender, request_for_alert =================================


def _usable(value: object) -> str | None:
    try:
        return normalise_user(value)
    except InvalidRequest:
        return None


def _candidates(evidence: object) -> set[str]:
    """Every usable address or id in the fields find_sender documents, in any evidence."""
    found: set[str] = set()
    for item in evidence if isinstance(evidence, list) else []:
        if not isinstance(item, Mapping) or item.get("@odata.type") not in (MAILBOX, USER):
            continue
        account = item.get("userAccount")
        account = account if isinstance(account, Mapping) else {}
        values = [account.get("userPrincipalName"), account.get("azureAdUserId")]
        if item.get("@odata.type") == MAILBOX:
            values += [item.get("primaryAddress"), item.get("upn")]
        found.update(user for user in map(_usable, values) if user is not None)
    return found


@examples(500)
@given(evidence=st.one_of(evidence_lists, json_values))
def test_find_sender_only_ever_names_an_address_the_evidence_holds(evidence: Any) -> None:
    found = sender_evidence(evidence)
    event("sender found" if found.sender else "several accounts" if found.candidates
          else "no sender")

    names = _candidates(evidence)
    assert find_sender(evidence) == found.sender
    # Nobody, one sender, or (for a person to choose) at least two distinct candidates.
    assert (found.sender is None and not found.candidates) == (not names)
    assert found.sender is None or not found.candidates
    assert len(found.candidates) != 1
    assert len(set(found.candidates)) == len(found.candidates)
    for name in (found.sender, *found.candidates):
        if name is not None:
            assert name in names
            assert normalise_user(name) == name


@examples(300)
@given(first=evidence_lists, second=evidence_lists)
def test_evidence_naming_several_accounts_never_picks_one_unmarked(
        first: list[Any], second: list[Any]) -> None:
    rob = mailbox_evidence(ROB)  # unmarked; nothing in the lists shares a name with...
    eve = {**mailbox_evidence("eve@other.example"), "roles": []}  # ...or with Eve
    unrelated = [item for item in first + second
                 if not (_candidates([item]) & {ROB, "eve@other.example"})]

    found = sender_evidence([rob, *unrelated, eve])

    assert found.sender is None or found.sender not in (ROB, "eve@other.example")
    if found.sender is None:
        assert {ROB, "eve@other.example"} <= set(found.candidates)


@examples(300)
@given(others=st.lists(st.tuples(st.sampled_from(["mailbox", "user"]), maybe_users,
                                 maybe_users), max_size=5),
       address=typed_users)
def test_a_mailbox_primary_address_beats_every_other_field(
        others: list[tuple[str, Any, Any]], address: str) -> None:
    first = mailbox_evidence(address, upn="someone.else@contoso.com",
                             account_upn="a.third@contoso.com", object_id=ROB_ID)
    # More evidence about the same account (its object id ties each item to the first).
    same = [mailbox_evidence(primary, upn=upn, object_id=ROB_ID) if kind == "mailbox"
            else user_evidence(upn, ROB_ID) for kind, primary, upn in others]

    assert find_sender([first, *same]) == address.strip().lower()


@examples(300)
@given(evidence=evidence_lists,
       unrelated=st.lists(st.one_of(
           json_values.filter(lambda v: not isinstance(v, Mapping)),
           odd_evidence.filter(lambda item: item.get("@odata.type") not in (MAILBOX, USER))),
           min_size=1, max_size=4),
       positions=st.lists(st.integers(0, 10), min_size=4, max_size=4))
def test_evidence_of_other_kinds_never_changes_the_sender(
        evidence: list[Any], unrelated: list[Any], positions: list[int]) -> None:
    mixed = list(evidence)
    for item, position in zip(unrelated, positions, strict=False):
        mixed.insert(min(position, len(mixed)), item)

    assert find_sender(mixed) == find_sender(evidence)


@examples(500)
@given(raw=raw_alerts())
@example(raw={})
@example(raw={"id": "x" * 201})
@example(raw={"id": "da637578995287051192_756343937", "evidence": "rob@contoso.com"})
def test_parse_alert_and_request_for_alert_survive_any_alert(raw: dict[str, Any]) -> None:
    alert_id = raw.get("id")
    try:
        alert = parse_alert(raw)
    except InvalidRequest as error:
        assert_reason(error.reason)
        assert not is_alert_id(alert_id)  # alert ids follow one rule at every door
        return
    assert alert.id == alert_id
    assert alert.sender == find_sender(raw.get("evidence"))
    assert alert.candidates == sender_evidence(raw.get("evidence")).candidates
    for name, value in (("title", alert.title), ("status", alert.status),
                        ("serviceSource", alert.service_source)):
        assert value == (raw.get(name) if isinstance(raw.get(name), str) else "")
    refused: str | None = None
    try:
        request = request_for_alert(alert)
    except InvalidRequest as error:
        refused = error.reason
    event("no sender" if refused else "outbound spam" if is_outbound_spam(alert, TITLES)
          else "other alert")
    if refused is not None:
        assert alert.sender is None
        assert refused.strip()
        assert ("accounts and marks none" in refused) == alert.ambiguous
        return
    assert request.user == alert.sender
    assert request.source == "alert"
    assert request.alert_ids == (alert.id,)
    assert request.request_id == alert_request_id(alert.id)
    assert request.reason is not None and request.reason.startswith("Defender alert: ")
    # What intake would enqueue (an outbound-spam alert with a Graph-style id), the worker
    # must accept unchanged. Other ids: see the regression tests below.
    if is_outbound_spam(alert, TITLES) and TOKEN.fullmatch(alert.id):
        assert_round_trip(request)


# == the alert poll: titles and evidence from Graph reaching intake =========================

HOSTILE_TEXT = ["\x1b[2J\x1b[H", "\x1b]8;;http://evil.example\x07link\x1b]8;;\x07",
                "\r\nremediation: case verified", "\u202egnp.exe", "[click](http://evil)",
                "\x00", "\u2028", "\x85"]
hostile_titles = st.one_of(
    titles,
    st.builds(lambda title, junk, where: junk + title if where else title + junk,
              st.sampled_from(TITLES), st.sampled_from(HOSTILE_TEXT), st.booleans()),
    st.text(st.characters(codec="utf-8"), max_size=300))


@examples(300)
@given(alerts=st.lists(raw_alerts(alert_id=plain_ids), min_size=1, max_size=8,
                       unique_by=lambda raw: raw["id"]),
       retitled=st.lists(hostile_titles, min_size=8, max_size=8),
       page_size=st.integers(1, 3))
def test_whatever_titles_and_evidence_the_poll_reads_each_alert_is_handled_once(
        alerts: list[dict[str, Any]], retitled: list[str], page_size: int) -> None:
    for raw, title in zip(alerts, retitled, strict=False):
        if isinstance(raw.get("title"), str) and raw["title"] not in TITLES:
            raw["title"] = title

    async def scenario() -> None:
        world = make_world(alerts)
        world.alerts.page_size = page_size
        report = await world.intake.poll()

        assert report.errors == []
        assert report.alerts_seen == len(alerts)
        assert report.pages == -(-len(alerts) // page_size)
        by_id = {raw["id"]: raw for raw in alerts}
        from_alerts = [r for r in world.sender.sent if r.source == "alert"]
        ours = [a for a in map(parse_alert, alerts)
                if is_outbound_spam(a, TITLES) and a.status != "resolved"]
        event(f"{len(ours)} outbound spam of {len(alerts)}")
        assert report.matched == len([a for a in map(parse_alert, alerts)
                                      if is_outbound_spam(a, TITLES)])
        # Each alert acted on exactly once: queued, rejected or escalated.
        assert sorted([*(r.alert_ids[0] for r in from_alerts), *report.rejected,
                       *report.escalated]) == sorted(a.id for a in ours)
        for request in from_alerts:
            assert_round_trip(request)
            assert request.user == find_sender(by_id[request.alert_ids[0]]["evidence"])
        for case in await world.tenant.journal.list_cases():
            assert case.state in (CaseState.REJECTED, CaseState.ESCALATED)
            assert case.reason
            # Stored as it came; made fit to show wherever a person reads it.
            assert shown(case.reason, 1000).isprintable()
            assert "\x1b" not in shown(case.reason, 1000)
        # A poll reads and queues; it changes nothing in the tenant.
        assert world.tenant.directory.passwords == []
        assert world.tenant.exchange.unblocks == []
        assert world.updater.attempts == []

    run(scenario())


# == the HTTP push door: handle_alert_push ==================================================


def assert_refused(response: PushResponse, status: int | None = None) -> None:
    assert 400 <= response.status < 500
    if status is not None:
        assert response.status == status
    assert set(response.body) == {"error"}
    assert isinstance(response.body["error"], str)
    assert_reason(response.body["error"])
    assert response.retry_after is None


@examples(1000)
@given(body=push_bodies, content_type=content_types)
@example(body=b'{"alertIds": "da637578995287051192_756343937"}',
         content_type="application/json")
@example(body=b'[{"id": "a"}, {"id": ["a"]}]', content_type="application/json")
@example(body=b"[]", content_type="application/json")
@example(body=b'{"value": []}', content_type="application/json")
def test_a_bad_push_gets_a_4xx_with_a_reason_and_reads_nothing_but_valid_ids(
        body: bytes, content_type: str | None) -> None:
    async def scenario() -> None:
        world = make_world()
        response = await handle_alert_push(body, content_type, world.intake)

        json.dumps(response.body)  # the Function answers it as JSON
        event(f"HTTP {response.status}")
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            assert_refused(response, 415)
        elif len(body) > MAX_PUSH_BYTES:
            assert_refused(response, 413)
        elif response.status != 404:
            assert_refused(response, 400)
        else:  # syntactically valid ids: each read once from Graph, none found, no 202
            lookups = world.alerts.lookups
            assert 0 < len(lookups) <= 100
            assert len(set(lookups)) == len(lookups)
            assert all(is_alert_id(alert_id) for alert_id in lookups)
            assert response.body == {"queued": 0, "already_known": 0, "rejected": [],
                                     "escalated": [], "not_confirmed": lookups,
                                     "not_found": lookups, "error": response.body["error"]}
            assert "provider's GUID" in response.body["error"]
            world.assert_tenant_untouched(lookups=lookups)
            return
        world.assert_tenant_untouched()
        assert await world.tenant.journal.list_cases() == []

    run(scenario())


@examples(300)
@given(push=well_formed_pushes(),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                     "APPLICATION/JSON"]))
def test_every_documented_push_shape_reads_exactly_its_ids(push: tuple[bytes, list[str]],
                                                           content_type: str) -> None:
    body, ids = push

    async def scenario() -> None:
        world = make_world()
        response = await handle_alert_push(body, content_type, world.intake)

        assert response.status == 404  # Graph knows none of them: never a 202
        assert response.body["not_confirmed"] == ids
        assert response.body["not_found"] == ids
        world.assert_tenant_untouched(lookups=ids)

    run(scenario())


@examples(300)
@given(alerts=st.lists(raw_alerts(alert_id=graph_ids), min_size=1, max_size=5,
                       unique_by=lambda raw: raw["id"]),
       shape=st.sampled_from(["alertIds", "list", "value"]))
def test_whatever_graph_says_about_a_pushed_alert_intake_queues_only_requests_the_worker_accepts(
        alerts: list[dict[str, Any]], shape: str) -> None:
    ids = [raw["id"] for raw in alerts]
    body = dumped({"alertIds": ids} if shape == "alertIds" else ids if shape == "list"
                  else {"value": [{"id": alert_id} for alert_id in ids]})

    async def scenario() -> None:
        world = make_world(alerts)
        response = await handle_alert_push(body, "application/json", world.intake)

        report = response.body
        started = report["queued"] or report["rejected"] or report["escalated"]
        assert response.status == (202 if started else 200)
        assert world.alerts.lookups == ids
        # Every pushed id is accounted for, once.
        assert (report["queued"] + report["already_known"] + len(report["rejected"])
                + len(report["escalated"]) + len(report["not_confirmed"])) == len(ids)
        assert report["queued"] == len(world.sender.sent)
        event(f"{len(world.sender.sent)} queued, {len(report['rejected'])} rejected, "
              f"{len(report['escalated'])} escalated")
        by_id = {raw["id"]: raw for raw in alerts}
        for request in world.sender.sent:
            assert_round_trip(request)
            [alert_id] = request.alert_ids
            assert request.user == find_sender(by_id[alert_id]["evidence"])
            assert is_outbound_spam(parse_alert(by_id[alert_id]), TITLES)
        cases = await world.tenant.journal.list_cases()
        for state, reported in ((CaseState.REJECTED, report["rejected"]),
                                (CaseState.ESCALATED, report["escalated"])):
            assert sorted(alert_id for case in cases if case.state is state
                          for alert_id in case.alert_ids) == sorted(reported)
        assert {case.state for case in cases} <= {CaseState.REJECTED, CaseState.ESCALATED}
        for case in cases:
            assert case.reason
        # Evidence naming several accounts: a person chooses; nobody is touched.
        for alert_id in report["escalated"]:
            candidates = parse_alert(by_id[alert_id]).candidates
            assert len(candidates) >= 2
            [case] = [c for c in cases if c.alert_ids == (alert_id,)]
            assert all(repr(name) in (case.reason or "") for name in candidates[:10])
        # Reading alerts and queueing requests is all a push may do.
        assert world.tenant.events == []
        assert world.updater.attempts == []

    run(scenario())


# == the Defender stream door: alert_hints and handle_stream_events =========================


def _readable(event: bytes | str) -> bool:
    try:
        body = json.loads(event)
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and isinstance(body.get("records"), list)


NOT_A_HINT = object()
PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")


def _hint(record: object) -> object:
    """The documented rule: an Office 365 AlertInfo with a wanted title, or AlertEvidence
    about a user or mailbox, hints its AlertId (whatever it holds); NOT_A_HINT otherwise."""
    if not isinstance(record, Mapping):
        return NOT_A_HINT
    properties = record.get("properties")
    if not isinstance(properties, Mapping):
        return NOT_A_HINT
    alert_id, title, entity = (properties.get(key) for key in ("AlertId", "Title",
                                                              "EntityType"))
    if properties.get("ServiceSource") != OFFICE_365_DISPLAY_NAME:
        return NOT_A_HINT
    wanted = {t.casefold() for t in TITLES}
    if record.get("category") == ALERT_INFO:
        return alert_id if isinstance(title, str) and title.strip().casefold() in wanted \
            else NOT_A_HINT
    if record.get("category") == ALERT_EVIDENCE:
        return alert_id if isinstance(entity, str) and entity.lower() in ("user", "mailbox") \
            else NOT_A_HINT
    return NOT_A_HINT


def _hinted(events: list[bytes | str]) -> list[object]:
    hinted: list[object] = []
    for raw in events:
        if _readable(raw):
            hinted += (h for h in map(_hint, json.loads(raw)["records"]) if h is not NOT_A_HINT)
    return hinted


def _expected_hints(events: list[bytes | str]) -> list[str]:
    """The hinted ids that are plain alert ids (1-200 ASCII letters, digits, - and _,
    starting with a letter or digit), each once."""
    return list(dict.fromkeys(h for h in _hinted(events)
                              if isinstance(h, str) and PLAIN_ID.fullmatch(h)))


def _refused_hints(events: list[bytes | str]) -> int:
    return sum(not (isinstance(h, str) and PLAIN_ID.fullmatch(h)) for h in _hinted(events))


@examples(500)
@given(events=stream_batches())
def test_stream_hints_follow_the_documented_rule_and_every_unreadable_event_is_reported(
        events: list[bytes | str]) -> None:
    hints, problems = alert_hints(events, TITLES)
    event(f"hints: {min(len(hints), 2)}, problems: {min(len(problems), 2)} (2: or more)")

    assert hints == _expected_hints(events)
    unreadable = [index for index, event in enumerate(events) if not _readable(event)]
    refused = _refused_hints(events)
    assert [problem.split(":")[0] for problem in problems] == [
        f"event {index}" for index in unreadable] + (["batch"] if refused else [])
    if refused:  # one line for every refused id, naming how many and the first
        assert problems[-1].startswith(f"batch: {refused} hinted record(s) refused: not an "
                                       "alert id: ")
    for problem in problems:
        assert_reason(problem)


@examples(300)
@given(events=stream_batches())
def test_a_stream_batch_reads_only_its_hints_and_queues_nothing_unconfirmed(
        events: list[bytes | str]) -> None:
    async def scenario() -> None:
        world = make_world()
        report = await handle_stream_events(events, world.intake, TITLES)

        hints = _expected_hints(events)
        assert report.not_confirmed == hints
        assert len(report.errors) == sum(not _readable(event) for event in events) + (
            1 if _refused_hints(events) else 0)
        assert report.enqueued == []
        world.assert_tenant_untouched(lookups=hints)
        assert await world.tenant.journal.list_cases() == []

    run(scenario())


# == known bugs =============================================================================

HUGE_INT = b"1" * 4301  # CPython refuses int() of more than 4300 digits with a ValueError


def test_parse_request_refuses_a_number_too_long_for_int() -> None:
    assert refusal(parse_request, b'{"user": "rob@contoso.com", "force": ' + HUGE_INT + b"}")


def test_the_worker_rejects_a_request_holding_a_number_too_long_for_int() -> None:
    async def scenario() -> None:
        world = make_world()
        case = await world.handler.on_request(delivery(b'{"user": ' + HUGE_INT + b"}"))
        assert case.state is CaseState.REJECTED

    run(scenario())


def test_the_verifier_rejects_a_message_holding_a_number_too_long_for_int() -> None:
    async def scenario() -> None:
        world = make_world()
        case = await world.handler.on_verification(
            delivery(b'{"kind": "verify", "attempt": ' + HUGE_INT + b"}"))
        assert case.state is CaseState.REJECTED

    run(scenario())


def test_a_push_holding_a_number_too_long_for_int_gets_a_400() -> None:
    async def scenario() -> None:
        world = make_world()
        response = await handle_alert_push(b"[" + HUGE_INT + b"]", "application/json",
                                           world.intake)
        assert_refused(response, 400)

    run(scenario())


def test_one_poison_event_does_not_cost_the_rest_of_the_stream_batch() -> None:
    good = dumped({"records": [{"category": ALERT_INFO, "properties": {
        "AlertId": "da637578995287051192_756343937", "Title": TITLES[0],
        "ServiceSource": OFFICE_365_DISPLAY_NAME}}]})

    async def scenario() -> None:
        world = make_world()
        report = await handle_stream_events([good, b'{"records": ' + HUGE_INT + b"}"],
                                            world.intake, TITLES)
        assert report.not_confirmed == ["da637578995287051192_756343937"]
        assert len(report.errors) == 1

    run(scenario())


def _refuses_request(body: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_request(body)


def _refuses_follow_up(body: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_follow_up(body)


def _reports_event(body: str) -> None:
    assert len(alert_hints([body], TITLES)[1]) == 1


@pytest.mark.parametrize("refuses", [_refuses_request, _refuses_follow_up, _reports_event])
def test_a_str_body_with_a_lone_surrogate_is_refused(refuses: Callable[[str], None]) -> None:
    refuses('{"user": "rob@contoso.com", "reason": "\ud800"}')


@pytest.mark.parametrize("field", ["reason", "requested_by"])
def test_a_body_with_an_encoded_surrogate_is_refused_as_invalid_utf8(field: str) -> None:
    body = b'{"user":"rob@contoso.com","' + field.encode() + b'":"spam \xed\xa0\x80"}'
    assert refusal(parse_request, body) is not None


def test_a_mapping_with_keys_of_mixed_types_is_refused() -> None:
    assert refusal(parse_request, {"user": ROB, 1: "one", "x": "ex"})


def test_an_alert_id_with_a_lone_surrogate_is_refused_or_queued_validly() -> None:
    try:
        request = request_for_alert(parse_alert(alert_json("\ud800", [mailbox_evidence(ROB)])))
    except InvalidRequest:
        return
    assert_round_trip(request)


def test_an_alert_id_the_worker_would_refuse_is_refused_at_intake() -> None:
    # One rule for alert ids at every door: intake never queues a request the worker
    # could only journal as rejected.
    with pytest.raises(InvalidRequest, match="no usable id"):
        parse_alert(alert_json("da637578995287051192 756343937", [mailbox_evidence(ROB)]))


def test_a_request_too_large_for_the_queue_is_refused_where_it_is_made() -> None:
    with pytest.raises(InvalidRequest, match="would exceed 16384 bytes"):
        parse_request({"user": ROB, "alert_ids": [f"{i:03}" + "x" * 197
                                                  for i in range(MAX_ALERT_IDS)]})


def test_the_stream_reads_from_graph_only_ids_the_push_door_would_accept() -> None:
    event = dumped({"records": [{"category": ALERT_INFO, "properties": {
        "AlertId": "a b/../c", "Title": TITLES[0], "ServiceSource": OFFICE_365_DISPLAY_NAME}}]})

    async def scenario() -> None:
        world = make_world()
        await handle_stream_events([event], world.intake, TITLES)
        world.assert_tenant_untouched()

    run(scenario())
