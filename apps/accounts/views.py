from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create


def home(request):
    if not request.user.is_authenticated:
        return render(request, "home.html", {})
    from apps.pipelines.selectors import pipelines_visible_to
    from apps.runs.selectors import runs_visible_to

    return render(
        request,
        "home.html",
        {
            "pipelines": pipelines_visible_to(user=request.user)[:10],
            "runs": runs_visible_to(user=request.user)[:10],
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    new_key = None
    if request.method == "POST":
        if "revoke" in request.POST:
            ApiToken.objects.filter(user=request.user, pk=request.POST["revoke"]).update(
                revoked_at=timezone.now()
            )
            messages.info(request, "Token revoked.")
            return redirect("tokens")
        _, new_key = api_token_create(user=request.user, name=request.POST.get("name", "")[:100])
    return render(
        request,
        "accounts/tokens.html",
        {"tokens": request.user.api_tokens.order_by("-created_at"), "new_key": new_key},
    )


def signin_locked_out(request, original_response=None, credentials=None):
    """django-axes' lock-out answer (``AXES_LOCKOUT_CALLABLE``) for /login/ and /admin/login/: the sign-in
    page saying why, with status 429."""
    return render(
        request,
        "accounts/login.html",
        {
            "form": AuthenticationForm(request),
            "next": request.POST.get("next") or request.GET.get("next", ""),
            "locked_out_minutes": settings.ILIAD_LOGIN_COOLOFF_MINUTES,
        },
        status=429,
    )
