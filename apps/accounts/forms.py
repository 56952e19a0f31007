"""Forms of the account pages."""

from __future__ import annotations

from django import forms
from django.conf import settings

from apps.accounts.models import TokenScope


class TokenCreateForm(forms.Form):
    """A new personal API token: its name, scope, lifetime in days and, optionally, the one project it
    may see (a choice among the projects ``user`` can see)."""

    name = forms.CharField(max_length=100, required=False)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    days = forms.IntegerField(min_value=1)
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label="all my projects")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["days"].initial = settings.ILIAD_API_TOKEN_DAYS
        self.fields["days"].max_value = settings.ILIAD_API_TOKEN_MAX_DAYS
        self.fields["days"].validators.append(
            forms.IntegerField(max_value=settings.ILIAD_API_TOKEN_MAX_DAYS).validators[-1]
        )
        self.fields["days"].widget.attrs["max"] = settings.ILIAD_API_TOKEN_MAX_DAYS
        projects = token_projects_for(user)
        if projects is None:
            del self.fields["project"]
        else:
            self.fields["project"].queryset = projects


def token_projects_for(user):
    """The projects a token of ``user`` may be restricted to, or None when projects do not exist."""
    try:
        from apps.projects.selectors import projects_visible_to
    except ImportError:
        return None
    return projects_visible_to(user=user)
