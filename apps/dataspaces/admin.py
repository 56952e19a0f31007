import json

from django import forms
from django.contrib import admin

from apps.dataspaces.models import DataSpace


class DataSpaceForm(forms.ModelForm):
    credentials = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON, e.g. {"access_key_id": "…", "secret_access_key": "…"} or {"username": "…", '
        '"password": "…"}. Write-only: leave empty to keep the stored credentials; '
        "give {} to remove them.",
    )

    class Meta:
        model = DataSpace
        fields = [
            "name",
            "title",
            "description",
            "kind",
            "config",
            "owner",
            "project",
            "access",
            "is_default_store",
            "enabled",
        ]

    def clean_credentials(self):
        text = self.cleaned_data.get("credentials", "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(f"not JSON: {error}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("give a JSON object")
        return value

    def save(self, commit=True):
        space = super().save(commit=False)
        if self.cleaned_data.get("credentials") is not None:
            space.set_credentials(self.cleaned_data["credentials"])
        if commit:
            space.save()
        return space


@admin.register(DataSpace)
class DataSpaceAdmin(admin.ModelAdmin):
    form = DataSpaceForm
    list_display = ("name", "title", "kind", "access", "owner", "project", "is_default_store", "enabled")
    list_filter = ("kind", "access", "enabled")
    search_fields = ("name", "title")
    readonly_fields = ("has_credentials", "created_at", "updated_at")
