"""A credential that gives no token: one clear, transient reason, whatever it raised."""

import time
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError

from remediation.adapters import credentials
from remediation.adapters.credentials import TokenGuard, token_failure
from remediation.domain.errors import TransientError


class Refusing:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise self.error

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("error", "reason"), [
    (CredentialUnavailableError("ManagedIdentityCredential authentication unavailable.\n"
                                "No identity has been assigned to this resource."),
     "cannot get a token for Graph: ManagedIdentityCredential authentication unavailable. "
     "(CredentialUnavailableError)"),
    (ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the "
                               "included credentials.\nAttempted credentials:\n\t..."),
     "cannot get a token for Graph: DefaultAzureCredential failed to retrieve a token from "
     "the included credentials. (ClientAuthenticationError)"),
    (OSError("Network is unreachable"), "cannot get a token for Graph: OSError: Network is "
     "unreachable"),
    (ValueError("bad\x1b[2J tenant\tid\u2028and more"),
     "cannot get a token for Graph: ValueError: bad [2J tenant id"),
    (RuntimeError(), "cannot get a token for Graph: RuntimeError"),
])
async def test_any_failure_to_get_a_token_becomes_one_clear_reason(
        error: Exception, reason: str) -> None:
    guard = TokenGuard(Refusing(error))  # type: ignore[arg-type]

    with pytest.raises(ClientAuthenticationError) as raised:
        await guard.get_token("https://graph.microsoft.com/.default")

    assert token_failure("Graph", raised.value).reason == reason


async def test_a_long_reason_is_cut_and_cancellation_is_not_swallowed() -> None:
    long = TokenGuard(Refusing(OSError("x" * 500)))  # type: ignore[arg-type]
    with pytest.raises(ClientAuthenticationError) as raised:
        await long.get_token("scope")
    assert len(token_failure("Exchange", raised.value).reason) < 260

    import asyncio

    cancelled = TokenGuard(Refusing(asyncio.CancelledError()))  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await cancelled.get_token("scope")


async def test_the_guard_closes_what_it_wraps() -> None:
    inner = Refusing(OSError())
    await TokenGuard(inner).close()  # type: ignore[arg-type]
    assert inner.closed


def test_a_resource_entra_does_not_know_is_permanent_with_the_fix() -> None:
    """AADSTS500011 is a configuration error, not an outage: retrying cannot help."""
    from remediation.domain.errors import PermanentError

    error = ClientAuthenticationError(message=(
        'Unexpected response "{\'error\': \'invalid_resource\', \'error_description\': '
        "'AADSTS500011: The resource principal named https://outlook.office365.com:443 was "
        "not found in the tenant named x.'}\""))
    failure = token_failure("Exchange", error)
    assert isinstance(failure, PermanentError)
    assert "AADSTS500011" in failure.reason
    assert "EXCHANGE_ENDPOINT" in failure.reason
    assert isinstance(token_failure("Graph", ClientAuthenticationError("timeout")),
                      TransientError)


class Counting:
    """A credential that counts the tokens it is asked for, each valid ``lifetime`` s."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.asked: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        self.lifetime = lifetime

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.asked.append((scopes, kwargs))
        return AccessToken(f"token-{len(self.asked)}", int(time.time() + self.lifetime))

    async def close(self) -> None:
        return None


GRAPH = "https://graph.microsoft.com/.default"
EXCHANGE = "https://outlook.office365.com/.default"


async def test_a_token_is_handed_out_again_for_the_same_request_for_a_while(
        monkeypatch: pytest.MonkeyPatch) -> None:
    inner = Counting()
    guard = TokenGuard(inner)  # type: ignore[arg-type]
    clock = [1000.0]
    monkeypatch.setattr(credentials.time, "monotonic", lambda: clock[0])

    first = [await guard.get_token(GRAPH, enable_cae=True) for _ in range(50)]
    assert {token.token for token in first} == {"token-1"}
    assert len(inner.asked) == 1

    other = await guard.get_token(EXCHANGE, enable_cae=True)  # another audience: asked
    assert other.token == "token-2"
    assert (await guard.get_token(GRAPH, enable_cae=False)).token == "token-3"

    clock[0] += credentials.REUSE  # a minute on: the credential is asked again
    assert (await guard.get_token(GRAPH, enable_cae=True)).token == "token-4"


async def test_a_claims_challenge_or_a_token_near_its_expiry_always_asks_the_credential(
        ) -> None:
    inner = Counting()
    guard = TokenGuard(inner)  # type: ignore[arg-type]
    await guard.get_token(GRAPH, enable_cae=True)
    challenged = await guard.get_token(GRAPH, claims='{"access_token":{}}', enable_cae=True)
    assert challenged.token == "token-2"
    # the token the challenge refused (token-1) is not handed out again: the credential is
    # asked (azure-identity's cache holds the one got for the challenge)
    assert (await guard.get_token(GRAPH, enable_cae=True)).token == "token-3"
    assert (await guard.get_token(GRAPH, enable_cae=True)).token == "token-3"

    short = Counting(lifetime=credentials.REFRESH_MARGIN - 1)
    near = TokenGuard(short)  # type: ignore[arg-type]
    tokens = {(await near.get_token(GRAPH)).token for _ in range(3)}
    assert tokens == {"token-1", "token-2", "token-3"}


async def test_a_refused_token_is_not_remembered() -> None:
    inner = Counting()
    guard = TokenGuard(inner)  # type: ignore[arg-type]
    refusing = TokenGuard(Refusing(OSError("down")))  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(ClientAuthenticationError):
            await refusing.get_token(GRAPH)
    await guard.get_token(GRAPH)
    await guard.close()
    assert (await guard.get_token(GRAPH)).token == "token-2"  # closed: forgotten


async def test_a_token_asked_for_before_a_claims_challenge_is_not_remembered() -> None:
    import asyncio

    inner = Counting()
    gate = asyncio.Event()

    class Slow(Counting):
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            token = await inner.get_token(*scopes, **kwargs)
            if not kwargs.get("claims") and token.token == "token-1":
                await gate.wait()  # the revoked token, got before the challenge came
            return token

    guard = TokenGuard(Slow())  # type: ignore[arg-type]
    before = asyncio.create_task(guard.get_token(GRAPH, enable_cae=True))
    await asyncio.sleep(0)
    assert (await guard.get_token(GRAPH, claims='{"a":1}', enable_cae=True)).token == "token-2"
    gate.set()
    assert (await before).token == "token-1"
    assert (await guard.get_token(GRAPH, enable_cae=True)).token == "token-3"
