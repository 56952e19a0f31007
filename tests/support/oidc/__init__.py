"""A real OpenID Connect provider for the sign-in tests: node ``oidc-provider`` (``provider.mjs`` here,
installed by ``make oidc-deps``) on 127.0.0.1, plus what tests do with it: register a client, sign in
through its login form over plain HTTP, end its session, get an API access token, and mint JWTs with
its own key (or another) for the negative cases.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "provider.mjs"
API_RESOURCE = "https://portal.test/api"
API_AUDIENCE = "iliad-api"
START_TIMEOUT_S = 20


def rsa_key(kid: str) -> tuple[rsa.RSAPrivateKey, dict]:
    """A new RSA key and its private JWK (with ``kid``, ``use=sig``, ``alg=RS256``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.pop("key_ops", None)  # PyJWT writes ["sign"]: the provider would not verify with it
    jwk.update(kid=kid, use="sig", alg="RS256")
    return key, jwk


def public_jwk(jwk: dict) -> dict:
    return {name: jwk[name] for name in ("kty", "n", "e", "kid", "use", "alg")}


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass
class RunningProvider:
    issuer: str
    key: rsa.RSAPrivateKey
    kid: str
    accounts_file: Path
    process: subprocess.Popen

    def set_account(self, login: str, **claims) -> None:
        """Give the account ``login`` these claims (read by the provider at its next use)."""
        accounts = json.loads(self.accounts_file.read_text())
        accounts[login] = claims
        self.accounts_file.write_text(json.dumps(accounts))

    def register_client(
        self, *, redirect_uris: list[str], post_logout_redirect_uris: list[str] = ()
    ) -> RegisteredClient:
        """Dynamic client registration: a confidential client with the authorization-code grant."""
        response = requests.post(
            f"{self.issuer}/reg",
            json={
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": list(post_logout_redirect_uris),
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_post",
            },
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return RegisteredClient(body["client_id"], body["client_secret"], tuple(redirect_uris))

    def env(self, name: str, client: RegisteredClient, **extra: str) -> dict[str, str]:
        """The ``ILIAD_OIDC_*`` variables that configure the portal for this provider as ``name``."""
        prefix = f"ILIAD_OIDC_{name.upper()}_"
        return {
            "ILIAD_OIDC_PROVIDERS": name,
            prefix + "ISSUER": self.issuer,
            prefix + "CLIENT_ID": client.client_id,
            prefix + "CLIENT_SECRET": client.client_secret,
            prefix + "SCOPES": "openid profile email groups",
            prefix + "TITLE": "Test IdP",
            prefix + "API_AUDIENCE": API_AUDIENCE,
            **{prefix + key: value for key, value in extra.items()},
        }

    def mint(
        self,
        claims: dict,
        *,
        key=None,
        kid: str | None = None,
        algorithm: str = "RS256",
        headers: dict | None = None,
    ) -> str:
        """A JWT with ``claims``, signed with the provider's own key unless ``key`` is given."""
        return jwt.encode(
            claims,
            key if key is not None else self.key,
            algorithm=algorithm,
            headers={"kid": kid or self.kid, **(headers or {})},
        )

    def sign_in(self, authorization_url: str, *, login: str, session: requests.Session | None = None) -> str:
        """Follow an authorization request through the provider's login and consent forms, the way a
        browser would; returns the URL the provider finally redirects to (the client's callback with
        ``code`` and ``state``). With a ``session`` that signed in before, no form is shown (SSO)."""
        http = session or requests.Session()
        response = http.get(authorization_url, allow_redirects=False, timeout=10)
        for _ in range(12):
            if response.is_redirect:
                location = urljoin(response.url, response.headers["Location"])
                if not location.startswith(self.issuer):
                    return location
                response = http.get(location, allow_redirects=False, timeout=10)
                continue
            assert response.status_code == 200, (
                f"{response.status_code} from {response.url}: {response.text[:500]}"
            )
            action = unescape(re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1))
            prompt = re.search(r'name="prompt" value="(\w+)"', response.text).group(1)
            fields = {"prompt": prompt}
            if prompt == "login":
                fields.update(login=login, password="any-password")
            response = http.post(
                urljoin(response.url, action), data=fields, allow_redirects=False, timeout=10
            )
        raise AssertionError(f"the provider did not redirect back; last page {response.url}")

    def end_session(self, end_session_url: str, session: requests.Session) -> str:
        """Confirm the provider's "sign out?" page; returns where it then redirects to."""
        page = session.get(end_session_url, timeout=10)
        assert page.status_code == 200, page.text[:500]
        action = unescape(re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
        xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text).group(1)
        response = session.post(
            urljoin(page.url, action), data={"xsrf": xsrf, "logout": "yes"}, allow_redirects=False, timeout=10
        )
        assert response.is_redirect, response.text[:500]
        return urljoin(response.url, response.headers["Location"])

    def api_access_token(self, client: RegisteredClient, *, login: str) -> str:
        """An access token for the portal's API (``resource`` = API_RESOURCE: a JWT with
        ``aud`` = API_AUDIENCE), as a script gets it: authorization code with PKCE, then the token
        endpoint."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        redirect_uri = client.redirect_uris[0]
        callback = self.sign_in(
            f"{self.issuer}/auth?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": client.client_id,
                    "redirect_uri": redirect_uri,
                    "scope": "openid api",
                    "resource": API_RESOURCE,
                    "state": "s",
                    "nonce": "n",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                }
            ),
            login=login,
        )
        code = parse_qs(urlsplit(callback).query)["code"][0]
        response = requests.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "resource": API_RESOURCE,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def id_token_claims(self, **overrides) -> dict:
        now = int(time.time())
        return {"iss": self.issuer, "sub": "ann", "iat": now, "exp": now + 300, **overrides}


@contextmanager
def running_provider(directory: Path) -> Iterator[RunningProvider]:
    """Start ``provider.mjs`` with a fresh signing key; fails the test (never skips) when it cannot."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the OpenID Connect tests run a real provider on Node.js")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"{HERE}/node_modules is missing: run `make oidc-deps` (npm ci of oidc-provider)")
    key, jwk = rsa_key(kid="provider-key-1")
    accounts_file = directory / "accounts.json"
    accounts_file.write_text("{}")
    config_file = directory / "provider.json"
    config_file.write_text(
        json.dumps(
            {
                "jwks": {"keys": [jwk]},
                "cookie_keys": [secrets.token_urlsafe(32)],
                "accounts_file": str(accounts_file),
                "api": {"resource": API_RESOURCE, "audience": API_AUDIENCE},
            }
        )
    )
    log_path = directory / "provider.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [node, str(SCRIPT), str(config_file)], cwd=HERE, stdout=subprocess.PIPE, stderr=log, text=True
        )
    try:
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line:
            process.kill()
            pytest.fail(
                f"the OpenID Connect provider did not start; its log:\n{log_path.read_text()[-3000:]}"
            )
        yield RunningProvider(json.loads(line)["issuer"], key, jwk["kid"], accounts_file, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
