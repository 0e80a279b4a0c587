"""The bearer-token cache, in process with a fake clock: a revoked token works until its cache entry
expires (``ttl``) and not a moment longer; unknown tokens are never cached."""

from __future__ import annotations

import pytest

from agnt_traces.app import App
from agnt_traces.errors import NotFound, Unauthorized
from agnt_traces.http.auth import TokenAuth
from agnt_traces.services.tokens import TokenService

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingTokens:
    """The app's TokenService, counting the lookups that reach the store."""

    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens
        self.lookups = 0

    async def tenant_for_hash(self, token_hash: bytes) -> str | None:
        self.lookups += 1
        return await self.tokens.tenant_for_hash(token_hash)


async def test_a_revoked_token_works_until_its_entry_expires(app: App) -> None:
    clock = Clock()
    counting = CountingTokens(app.tokens)
    auth = TokenAuth(lambda: counting, ttl=2.0, clock=clock)  # type: ignore[arg-type, return-value]
    created = await app.tokens.create("acme", "ci")

    assert await auth.authenticate(f"Bearer {created.token}") == "acme"
    assert counting.lookups == 1
    await app.tokens.revoke(created.id)

    clock.now += 1.9  # still inside the ttl: the cached answer, without a lookup
    assert await auth.tenant_for(created.token) == "acme"
    assert counting.lookups == 1

    clock.now += 0.2  # past it: looked up again, and refused
    assert await auth.tenant_for(created.token) is None
    assert counting.lookups == 2
    with pytest.raises(Unauthorized, match="invalid or revoked token"):
        await auth.authenticate(f"Bearer {created.token}")


async def test_an_entry_expires_exactly_at_its_ttl(app: App) -> None:
    clock = Clock()
    counting = CountingTokens(app.tokens)
    auth = TokenAuth(lambda: counting, ttl=2.0, clock=clock)  # type: ignore[arg-type, return-value]
    created = await app.tokens.create("acme", "ci")
    await auth.tenant_for(created.token)
    clock.now += 2.0  # an entry is good while its expiry is still ahead: at the ttl it is looked up again
    await auth.tenant_for(created.token)
    assert counting.lookups == 2


async def test_unknown_tokens_are_not_cached_and_ttl_zero_caches_nothing(app: App) -> None:
    clock = Clock()
    counting = CountingTokens(app.tokens)
    auth = TokenAuth(lambda: counting, ttl=2.0, clock=clock)  # type: ignore[arg-type, return-value]
    assert await auth.tenant_for("agt_not-a-token") is None
    assert await auth.tenant_for("agt_not-a-token") is None
    assert counting.lookups == 2  # a miss is asked again: a token created meanwhile works at once

    uncached = TokenAuth(lambda: counting, ttl=0, clock=clock)  # type: ignore[arg-type, return-value]
    created = await app.tokens.create("acme", "ci")
    assert await uncached.tenant_for(created.token) == "acme"
    await app.tokens.revoke(created.id)
    assert await uncached.tenant_for(created.token) is None  # no cache: revoked means refused at once


async def test_token_service_lists_without_values_and_revokes_once(app: App) -> None:
    created = await app.tokens.create("acme", "ci")
    listed = await app.tokens.list("acme")
    assert [t.render() for t in listed] == [
        {
            "id": created.id,
            "tenant": "acme",
            "name": "ci",
            "createdAt": created.created_at,
            "revokedAt": None,
        }
    ]
    assert created.token not in str(listed)
    assert await app.tokens.list("other") == []
    await app.tokens.revoke(created.id)
    assert (await app.tokens.list())[0].revoked_at is not None
    with pytest.raises(NotFound, match="no active token"):
        await app.tokens.revoke(created.id)
