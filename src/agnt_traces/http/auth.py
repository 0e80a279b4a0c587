"""Bearer tokens over HTTP: one lookup (by hash) shared by REST and MCP, with a short cache.

A token is bound to one tenant. The cache keeps a verified token for ``ttl`` seconds, so a revoked
token stops working within that time (the CLI revokes from another process: nothing to invalidate).
Tokens are never logged, echoed or kept in the cache: it is keyed by the token's hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mcp.server.auth.provider import AccessToken

from ..errors import Unauthorized
from ..services.tokens import TokenService
from ..tokens import hash_token

__all__ = ["DEFAULT_TOKEN_TTL", "McpTokenVerifier", "TokenAuth", "bearer_token"]

DEFAULT_TOKEN_TTL = 2.0
_MAX_CACHED = 10_000
_MAX_TOKEN_CHARS = 512


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    Raises:
        Unauthorized: no header, another scheme, or no token after the scheme.
    """
    if not header:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>' (agnt-traces token create)")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > _MAX_TOKEN_CHARS:
        raise Unauthorized("malformed Authorization header: use 'Authorization: Bearer <token>'")
    return token


class TokenAuth:
    """Token → tenant, looked up by hash (``TokenService``) and cached briefly."""

    def __init__(
        self,
        tokens: Callable[[], TokenService],
        ttl: float = DEFAULT_TOKEN_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tokens  # a getter: the app (and its store) is opened in the server's lifespan
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[bytes, tuple[str, float]] = {}

    async def tenant_for(self, token: str) -> str | None:
        digest = hash_token(token)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        tenant = await self._tokens().tenant_for_hash(digest)
        if tenant is None:
            self._cache.pop(digest, None)
            return None
        if self.ttl > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (tenant, now + self.ttl)
        return tenant

    async def authenticate(self, header: str | None) -> str:
        """The tenant of the request's bearer token.

        Raises:
            Unauthorized: missing, malformed, unknown or revoked token.
        """
        tenant = await self.tenant_for(bearer_token(header))
        if tenant is None:
            raise Unauthorized("invalid or revoked token: create one with 'agnt-traces token create --tenant T'")
        return tenant


class McpTokenVerifier:
    """The MCP SDK's ``TokenVerifier``: the token's tenant becomes ``AccessToken.client_id``
    (``server.common.tenant_of`` reads it). ``subject`` is a hash of the token, so an MCP session stays
    bound to the token that opened it."""

    def __init__(self, auth: TokenAuth) -> None:
        self.auth = auth

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token or len(token) > _MAX_TOKEN_CHARS:
            return None
        tenant = await self.auth.tenant_for(token)
        if tenant is None:
            return None
        return AccessToken(token=token, client_id=tenant, scopes=[], subject=hash_token(token).hex()[:32])
