"""DRF authentication with personal API tokens: ``Authorization: Token <key>``."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions

from apps.accounts.services import TokenRefused, api_token_authenticate
from apps.accounts.throttling import FailureThrottledAuthentication


class ApiTokenAuthentication(FailureThrottledAuthentication):
    """Returns ``(user, token)`` for a valid, unrevoked, unexpired token (``request.auth`` is then the
    ``ApiToken``: its ``project_id``, when set, restricts what the selectors show), None without a
    ``Token`` header. Raises AuthenticationFailed (401, saying why) for a bad, revoked or expired one,
    PermissionDenied (403) for a read-only token on an unsafe method, and Throttled (429) once the
    client's address has made too many failed attempts (``token_failure`` rate)."""

    keyword = "Token"

    def authenticate(self, request):
        user, token = super().authenticate(request) or (None, None)
        if token is None:
            return None
        if token.is_read_only and request.method not in permissions.SAFE_METHODS:
            raise exceptions.PermissionDenied(
                f"This token is read-only: it may not {request.method} here. Use a read-write token."
            )
        return (user, token)

    def _authenticate_token(self, header: list[bytes]):
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Token <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Token contains invalid characters.") from None
        try:
            token = api_token_authenticate(key=key)
        except TokenRefused as refused:
            raise exceptions.AuthenticationFailed(str(refused)) from None
        # The access rules (apps.projects.access) read the user, not the request: a token restricted to
        # a project narrows every selector through this mark on the request's own user object.
        token.user.token_project_id = token.project_id
        return (token.user, token)

    def authenticate_header(self, request):
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The token scheme in the OpenAPI schema: Swagger UI's "Authorize" then sends it."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A personal API token (page \"API tokens\"), sent as `Token <key>`.",
        }


class SessionCookieScheme(OpenApiAuthenticationExtension):
    """The browser's session in the OpenAPI schema, with what an unsafe request needs besides the cookie."""

    target_class = "rest_framework.authentication.SessionAuthentication"
    name = "cookieAuth"
    priority = 1  # over drf-spectacular's own, which has no description

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": (
                "The portal's sign-in session (browser). PUT, POST, PATCH and DELETE also need the "
                "`X-CSRFToken` header with the value of the CSRF cookie."
            ),
        }
