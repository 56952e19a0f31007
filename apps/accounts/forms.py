"""Forms of the account pages."""

from __future__ import annotations

from django import forms

from apps.accounts.models import TokenScope
from apps.accounts.services import token_lifetime_bounds
from apps.projects.access import projects_of


class TokenCreateForm(forms.Form):
    """A new personal API token: its name, scope, lifetime in days and, optionally, the one project it
    is restricted to (one of ``user``'s projects). Left out, the scope is read-only and the lifetime
    the default."""

    name = forms.CharField(max_length=100, required=False)
    scope = forms.ChoiceField(
        choices=TokenScope.choices, initial=TokenScope.READ, required=False, widget=forms.RadioSelect
    )
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label="all my projects")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Built here, not in the class body, so that the configured bounds are read when the page is.
        default_days, max_days = token_lifetime_bounds()
        self.fields["days"] = forms.IntegerField(
            min_value=1, max_value=max_days, initial=default_days, required=False
        )
        self.order_fields(["name", "scope", "days", "project"])
        self.fields["project"].queryset = projects_of(user=user).order_by("name")

    def clean_scope(self) -> str:
        return self.cleaned_data["scope"] or TokenScope.READ
