"""``{% signin_options as signin %}``: the sign-in page's choices, whichever view renders it (the
sign-in view, or django-axes' lock-out answer)."""

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def signin_options() -> dict:
    """``{"providers": [ProviderConfig, ...], "local_login": bool}``."""
    return {
        "providers": list(settings.ILIAD_OIDC_PROVIDERS.values()),
        "local_login": settings.ILIAD_LOCAL_LOGIN,
    }
