"""How an alert may be named at our doors: a Graph ``alerts_v2`` id, or the provider's GUID.

SIEMs, Sentinel and the Office 365 Management Activity feed carry the provider's id
(``providerAlertId``, a GUID); Graph names a Defender for Office 365 alert ``fa`` + that GUID
(as wazuh/wazuh#37898 shows), and answers 404 for the bare GUID. Only Office 365
alerts can be outbound-spam alerts, so a bare GUID is read as the Office 365 alert it names;
what Graph answers for that id (read back and matched as any other) decides the rest.
"""

import re

from remediation.domain.errors import InvalidRequest

# A plain alerts_v2 id, as Graph and the Defender stream write them
# ("da637551227677560813_-961444813", "fa4dde311e-5509-9c6a-ce00-08dee8f01678", GUIDs):
# ASCII letters and digits, "-" and "_", starting with a letter or digit, at most 200. An id
# goes into a Graph URL path: nothing that is a path segment of its own ("." or ".."), reaches
# another one ("/", "\", "%2F"), or hides in white space is an alert id.
ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")
ALERT_ID_RULE = "1-200 ASCII letters, digits, '-' or '_', starting with a letter or digit"

PROVIDER_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                           r"[0-9A-Fa-f]{12}")
OFFICE_365_PREFIX = "fa"
ACCEPTED_FORMS = (
    "a Graph alerts_v2 id (e.g. 'fa4dde311e-5509-9c6a-ce00-08dee8f01678'; "
    f"{ALERT_ID_RULE}) or the provider's GUID of a Defender for Office 365 alert "
    "(providerAlertId, the AlertId SIEMs and the Office 365 Management Activity feed carry, "
    "e.g. '4dde311e-5509-9c6a-ce00-08dee8f01678')")


def is_alert_id(value: object) -> bool:
    return isinstance(value, str) and ALERT_ID.fullmatch(value) is not None


def is_provider_guid(value: object) -> bool:
    return isinstance(value, str) and PROVIDER_GUID.fullmatch(value) is not None


def graph_alert_id(value: object) -> str:
    """The alerts_v2 id of an alert named by its Graph id or by its provider's GUID (then
    ``fa`` + the GUID in lower case, as Graph writes it); InvalidRequest naming the accepted
    forms for anything else."""
    if is_provider_guid(value):
        assert isinstance(value, str)
        return OFFICE_365_PREFIX + value.lower()
    if is_alert_id(value):
        assert isinstance(value, str)
        return value
    text = repr(value)
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise InvalidRequest(f"not an alert id: {shown}; name an alert by {ACCEPTED_FORMS}")
