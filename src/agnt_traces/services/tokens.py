"""API tokens for the HTTP server: create (the value is shown once), list, revoke, and token → tenant.

A token is stored only as its hash (``agnt_traces.tokens``); this service is the one way front ends (the
CLI, the HTTP auth, the web sign-in) reach the token table.
"""

from __future__ import annotations

from pydantic import Field

from ..errors import NotFound
from ..ids import ms_to_rfc3339
from ..store.base import Store, TokenRecord
from ..tokens import hash_token, new_token
from ..wire import WireModel

__all__ = ["CreatedToken", "TokenInfo", "TokenService"]


class TokenInfo(WireModel):
    """A token as listed: never its value."""

    id: str
    tenant: str
    name: str
    created_at: str = Field(description="RFC 3339, UTC")
    revoked_at: str | None = Field(description="RFC 3339, UTC; null while the token is active")

    @classmethod
    def of(cls, rec: TokenRecord) -> TokenInfo:
        return cls.model_construct(
            id=rec.id,
            tenant=rec.tenant,
            name=rec.name,
            created_at=ms_to_rfc3339(rec.created_at),
            revoked_at=None if rec.revoked_at is None else ms_to_rfc3339(rec.revoked_at),
        )


class CreatedToken(TokenInfo):
    """A new token, with its value: the only time the value is ever available."""

    token: str = Field(description="the bearer token: 'Authorization: Bearer <token>'")


class TokenService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, tenant: str, name: str) -> CreatedToken:
        token = new_token()
        rec = await self.store.create_token(tenant, name, hash_token(token))
        return CreatedToken.model_construct(**TokenInfo.of(rec).__dict__, token=token)

    async def list(self, tenant: str | None = None) -> list[TokenInfo]:
        """Every token (of ``tenant``, or of all tenants), oldest first."""
        return [TokenInfo.of(rec) for rec in await self.store.list_tokens(tenant)]

    async def revoke(self, token_id: str) -> None:
        """Raises:
        NotFound: no token with that id, or it is revoked already."""
        if not await self.store.revoke_token(token_id):
            raise NotFound(f"no active token {token_id!r}: token list shows the ids", {"tokenId": token_id})

    async def tenant_for(self, token: str) -> str | None:
        """The tenant of an active token; None for an unknown or revoked one."""
        return await self.tenant_for_hash(hash_token(token))

    async def tenant_for_hash(self, token_hash: bytes) -> str | None:
        """As ``tenant_for``, by the token's hash (what a cache or a web session keeps instead of the token)."""
        return await self.store.tenant_for_token(token_hash)
