"""A per-process cache of verified tokens: the JWT library out of the hot path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared import tokens
from shared.exceptions import TokenExpired


@dataclass
class VerifiedTokens:
    """Claims of tokens of one type whose signature has already been verified.

    Partners present the same login JWT and Service ID for up to an hour; checking the
    signature once per token instead of once per request takes the JWT library out of the
    hot path. Only genuine tokens are ever cached (a forgery cannot fill the cache), the
    key is the exact token string, and expiry is still judged on every use. Revocation,
    disabling and password resets are decided in Redis, never here.
    """

    token_type: tokens.TokenType
    max_entries: int = 4096
    _claims: dict[str, dict[str, Any]] = field(default_factory=dict)

    def verify(self, token: str, now: int) -> dict[str, Any]:
        """Like shared.tokens.verify at Unix time `now`: TokenInvalid / TokenExpired, else
        the claims."""
        claims = self._claims.get(token)
        if claims is None:
            claims = tokens.verify(self.token_type, token, now=now)
            if len(self._claims) >= self.max_entries:
                self._claims.clear()  # rare and cheap; dict ops stay atomic across threads
            self._claims[token] = claims
        elif now >= claims["exp"]:
            raise TokenExpired()
        return claims
