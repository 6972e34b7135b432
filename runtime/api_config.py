"""Config of the HTTP API's access control (`api.auth`) and of the metrics endpoint of the
components that serve no API (`metrics`). Secrets only from the environment or files."""

from __future__ import annotations

import os
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

API_TOKEN_ENV = "SENTINEL_API_TOKEN"
OAUTH2_PROXY_HEADERS = ["X-Forwarded-User", "X-Auth-Request-User"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthMode(StrEnum):
    NONE = "none"
    TOKEN = "token"
    PROXY = "proxy"


class ApiAuthConfig(_Section):
    """Who may read pages and the read API and make writes (docs/api.md, "Access").

    none: everyone who can reach the port (the embedded default binds 127.0.0.1);
    token: ``Authorization: Bearer <token>`` (the pages also take a sign-in cookie);
    proxy: an authenticating proxy (oauth2-proxy) names the user in a header, trusted only
    from `trusted_proxies`. /health, /ready and the webhook endpoints keep their own rules.
    """

    mode: AuthMode = AuthMode.NONE
    token_file: Path | None = Field(
        default=None, description=f"File holding the bearer token (else env {API_TOKEN_ENV})."
    )
    user_headers: list[str] = Field(
        default_factory=lambda: list(OAUTH2_PROXY_HEADERS),
        min_length=1,
        description="Headers naming the signed-in user, first present wins (proxy mode).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges of the proxy; a user header from anywhere else "
        "is ignored (proxy mode needs at least one).",
    )
    public_metrics: bool = Field(
        default=False, description="Serve /metrics without authentication (for scrapers)."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ip_network(value, strict=False)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not an IP address or CIDR range") from exc
        return values

    @model_validator(mode="after")
    def _proxy_needs_proxies(self) -> ApiAuthConfig:
        if self.mode == AuthMode.PROXY and not self.trusted_proxies:
            raise ValueError("mode proxy needs trusted_proxies (the proxy's address or range)")
        return self

    def networks(self) -> list[IPv4Network | IPv6Network]:
        return [ip_network(value, strict=False) for value in self.trusted_proxies]

    def token(self) -> SecretStr | None:
        """The token from the environment, else from `token_file`, else None."""
        value = os.environ.get(API_TOKEN_ENV) or (
            self.token_file.read_text().strip() if self.token_file is not None else ""
        )
        return SecretStr(value) if value else None
