"""Whether a request that failed in transport can have reached the service.

A change whose request may have reached Graph or Exchange is never sent again in the same
call (``OutcomeUnknown``, DESIGN "Rules of the house"); only a request that never left may
be. Both clients now send over aiohttp (Exchange through azure-core's transport, Graph
through httpx's transport on aiohttp, ``httpx_aiohttp``), and both wrap aiohttp's error in
their own type, chained as ``__cause__``. Neither wrapper can be trusted to say "not sent":
azure-core raises ``ServiceRequestError`` for any ``aiohttp.ClientError`` that is not a
response error, and httpx-aiohttp maps any ``ClientConnectionError`` it knows no closer
match for to ``httpx.ConnectTimeout``, so a connection dropped after the request went out
(``ServerDisconnectedError``, a reset: ``ClientOSError``) looked unsent to both. aiohttp's
own error decides: only a failure to connect (``ClientConnectorError``: refused, DNS, TLS;
``ConnectionTimeoutError``: no connection in time, the pool's wait included) is before the
request was written.
"""

import aiohttp

_BEFORE_SENDING = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def never_sent(error: BaseException, *, otherwise: bool) -> bool:
    """True when aiohttp's error under ``error`` (its ``__cause__`` chain) failed before the
    request was written; ``otherwise`` when no aiohttp error is in the chain (a transport of
    another kind: the wrapper's own type decides)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, aiohttp.ClientError):
            return isinstance(cause, _BEFORE_SENDING)
        seen.add(id(cause))
        cause = cause.__cause__
    return otherwise
