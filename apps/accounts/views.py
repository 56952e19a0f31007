from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.accounts.forms import TokenCreateForm
from apps.accounts.services import api_token_create, api_token_revoke


def home(request):
    if not request.user.is_authenticated:
        return render(request, "home.html", {})
    from apps.gallery.selectors import templates_all
    from apps.pipelines.selectors import pipelines_visible_to
    from apps.runs.selectors import runs_visible_to

    return render(
        request,
        "home.html",
        {
            "pipelines": pipelines_visible_to(user=request.user)[:10],
            "runs": runs_visible_to(user=request.user)[:10],
            "templates": templates_all(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    """The user's personal API tokens: create one (name, scope, lifetime, project), see each one's
    scope, expiry, project and last use, revoke one."""
    new_key = None
    form = TokenCreateForm(user=request.user)
    if request.method == "POST":
        if "revoke" in request.POST:
            token_id = request.POST["revoke"]
            if token_id.isdigit() and api_token_revoke(user=request.user, token_id=int(token_id)):
                messages.info(request, "Token revoked.")
            else:
                messages.error(request, "You have no such active token.")
            return redirect("tokens")
        form = TokenCreateForm(request.POST, user=request.user)
        if form.is_valid():
            _, new_key = api_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                days=form.cleaned_data["days"],
                project=form.cleaned_data.get("project"),
            )
            form = TokenCreateForm(user=request.user)
    return render(
        request,
        "accounts/tokens.html",
        {
            "tokens": request.user.api_tokens.order_by("-created_at"),
            "new_key": new_key,
            "form": form,
            "now": timezone.now(),
            "max_days": settings.ILIAD_API_TOKEN_MAX_DAYS,
        },
        status=400 if form.errors else 200,
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
