"""OpenID Connect providers and role rules, read from the environment when the settings load.

Imports nothing from the portal's apps: ``iliad_portal/settings.py`` calls ``providers_from_env`` and
``role_rules_from_env``, and a bad value stops the process at start naming the variable.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
# Asymmetric algorithms only: an HMAC-signed token would be checked with the client secret, which the
# portal shares with the provider, and "none" is no signature at all.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
ROLES = ("owner", "editor", "viewer")  # apps.projects.models.Role, strongest first
DEFAULT_SCOPES = "openid profile email"
DEFAULT_GROUP_CLAIMS = "groups,eduperson_entitlement"


@dataclass(frozen=True)
class ProviderConfig:
    """One identity provider. ``name`` appears in the portal's URLs (``/oidc/<name>/login/``) and in the
    variables ``ILIAD_OIDC_<NAME>_*``; ``issuer`` must equal the provider's ``iss`` exactly."""

    name: str
    title: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: str = DEFAULT_SCOPES
    group_claims: tuple[str, ...] = ("groups", "eduperson_entitlement")
    api_audience: str = ""
    algorithms: tuple[str, ...] = ("RS256",)

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def expected_api_audience(self) -> str:
        """The ``aud`` that bearer access tokens for the portal's API must contain."""
        return self.api_audience or self.client_id


@dataclass(frozen=True)
class RoleRule:
    """Grants ``role`` in project ``project`` to whoever has a ``claim`` value equal to ``match`` or, for
    ``regex``, fully matching it (then ``project`` may use the pattern's groups: ``\\1``, ``\\g<name>``).
    ``provider`` limits the rule to one provider's sign-ins."""

    claim: str
    project: str
    role: str
    match: str | None = None
    regex: re.Pattern | None = None
    provider: str | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` or the content of the file ``NAME_FILE`` (trailing newline removed)."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as error:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {error.strerror}") from None


def provider_from_env(env: Mapping[str, str], name: str) -> ProviderConfig:
    """The provider ``name`` as the variables ``ILIAD_OIDC_<NAME>_*`` describe it."""
    prefix = f"ILIAD_OIDC_{name.upper()}_"
    issuer = env.get(prefix + "ISSUER", "").strip()
    if not issuer:
        raise ImproperlyConfigured(
            f"{prefix}ISSUER is not set (provider {name!r} is in ILIAD_OIDC_PROVIDERS)"
        )
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"{prefix}ISSUER={issuer!r} is not an https:// URL without query or fragment"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ImproperlyConfigured(
            f"{prefix}ISSUER={issuer!r} must use https:// (plain http is only accepted on loopback addresses)"
        )
    client_id = env.get(prefix + "CLIENT_ID", "").strip()
    if not client_id:
        raise ImproperlyConfigured(f"{prefix}CLIENT_ID is not set")
    client_secret = _secret(env, prefix + "CLIENT_SECRET")
    if not client_secret:
        raise ImproperlyConfigured(f"{prefix}CLIENT_SECRET (or {prefix}CLIENT_SECRET_FILE) is not set")
    scopes = " ".join(env.get(prefix + "SCOPES", "").replace(",", " ").split()) or DEFAULT_SCOPES
    if "openid" not in scopes.split():
        raise ImproperlyConfigured(f"{prefix}SCOPES={scopes!r} must include 'openid'")
    group_claims = tuple(c.strip() for c in env.get(prefix + "GROUP_CLAIMS", DEFAULT_GROUP_CLAIMS).split(","))
    algorithms = tuple(a.strip() for a in env.get(prefix + "ALGORITHMS", "RS256").split(",") if a.strip())
    bad = [a for a in algorithms if a not in ALLOWED_ALGORITHMS]
    if bad or not algorithms:
        raise ImproperlyConfigured(
            f"{prefix}ALGORITHMS={env.get(prefix + 'ALGORITHMS')!r}: "
            f"use some of {', '.join(ALLOWED_ALGORITHMS)}"
        )
    return ProviderConfig(
        name=name,
        title=env.get(prefix + "TITLE", "").strip() or name.replace("_", " ").title(),
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        group_claims=tuple(c for c in group_claims if c),
        api_audience=env.get(prefix + "API_AUDIENCE", "").strip(),
        algorithms=algorithms,
    )


def providers_from_env(env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    """``ILIAD_OIDC_PROVIDERS=egi,keycloak`` → ``{"egi": ProviderConfig, ...}`` in that order (the order
    of the "Sign in with …" buttons). Empty when the variable is unset."""
    names = [n.strip() for n in env.get("ILIAD_OIDC_PROVIDERS", "").split(",") if n.strip()]
    providers: dict[str, ProviderConfig] = {}
    for name in names:
        if not NAME_PATTERN.match(name):
            raise ImproperlyConfigured(
                f"ILIAD_OIDC_PROVIDERS: {name!r} is not a provider name (lower-case letters, digits and _, "
                "starting with a letter, at most 30)"
            )
        if name in providers:
            raise ImproperlyConfigured(f"ILIAD_OIDC_PROVIDERS names {name!r} twice")
        providers[name] = provider_from_env(env, name)
    issuers = [p.issuer for p in providers.values()]
    for issuer in set(issuers):
        if issuers.count(issuer) > 1:
            raise ImproperlyConfigured(f"ILIAD_OIDC_PROVIDERS: two providers have the issuer {issuer!r}")
    return providers


def role_rules_from_json(text: str, *, source: str = "ILIAD_OIDC_ROLE_RULES") -> list[RoleRule]:
    """Parse a JSON list of rules ``{"claim", "match" | "regex", "project", "role"[, "provider"]}``."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImproperlyConfigured(f"{source} is not valid JSON: {error}") from None
    if not isinstance(items, list):
        raise ImproperlyConfigured(f"{source} must be a JSON list of rules")
    rules = []
    for index, item in enumerate(items):
        where = f"{source}[{index}]"
        if not isinstance(item, dict):
            raise ImproperlyConfigured(f"{where} must be an object")
        unknown = set(item) - {"claim", "match", "regex", "project", "role", "provider"}
        if unknown:
            raise ImproperlyConfigured(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        for key in ("claim", "project", "role"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ImproperlyConfigured(f"{where}: {key!r} must be a non-empty string")
        if ("match" in item) == ("regex" in item):
            raise ImproperlyConfigured(f"{where} needs exactly one of 'match' (exact value) or 'regex'")
        if item["role"] not in ROLES:
            raise ImproperlyConfigured(
                f"{where}: 'role' must be one of {', '.join(ROLES)}, not {item['role']!r}"
            )
        pattern = None
        if "regex" in item:
            try:
                pattern = re.compile(item["regex"])
            except (re.error, TypeError) as error:
                raise ImproperlyConfigured(
                    f"{where}: 'regex' {item['regex']!r} does not compile: {error}"
                ) from None
        elif not isinstance(item["match"], str):
            raise ImproperlyConfigured(f"{where}: 'match' must be a string")
        if item.get("provider") is not None and not isinstance(item["provider"], str):
            raise ImproperlyConfigured(f"{where}: 'provider' must be a provider name")
        rules.append(
            RoleRule(
                claim=item["claim"],
                project=item["project"],
                role=item["role"],
                match=item.get("match"),
                regex=pattern,
                provider=item.get("provider"),
            )
        )
    return rules


def role_rules_from_env(env: Mapping[str, str]) -> list[RoleRule]:
    """``ILIAD_OIDC_ROLE_RULES`` (JSON) or the file ``ILIAD_OIDC_ROLE_RULES_FILE`` names; none when unset."""
    if env.get("ILIAD_OIDC_ROLE_RULES"):
        return role_rules_from_json(env["ILIAD_OIDC_ROLE_RULES"])
    text = _secret(env, "ILIAD_OIDC_ROLE_RULES")
    return role_rules_from_json(text, source="ILIAD_OIDC_ROLE_RULES_FILE") if text else []
