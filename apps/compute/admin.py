"""Admin for compute targets. Secret options are write-only: the form shows which are set, never their
values, and takes changes as a JSON object; the configuration is checked for the target's kind and
the overflow chain for cycles."""

import json

from django import forms
from django.contrib import admin

from apps.compute.models import ComputeTarget
from apps.compute.secrets import SecretsUnreadable, decrypt_json
from apps.compute.services import merge_secrets, secret_keys, target_errors


class ComputeTargetForm(forms.ModelForm):
    secrets = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text='Changes to the secret options, as a JSON object: {"password": "…"} sets one, '
        '{"password": null} removes it; options not named are kept. Leave empty to keep them all. '
        "Stored encrypted; never shown again.",
    )

    class Meta:
        model = ComputeTarget
        fields = [
            "name", "title", "kind", "description", "config", "enabled", "is_default", "public",
            "allowed_users", "allowed_groups", "max_concurrent_steps", "overflow", "burst_threshold",
        ]

    def clean_secrets(self):
        text = self.cleaned_data.get("secrets", "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"not JSON: {error.msg} (line {error.lineno})") from error
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object of option → value (null removes one)")
        return value

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if self.instance.pk is not None and cleaned.get("overflow") is not None:
            if cleaned["overflow"].pk == self.instance.pk:
                self.add_error("overflow", "a target cannot overflow into itself")
                return cleaned
        probe = ComputeTarget(
            pk=self.instance.pk, name=cleaned.get("name", self.instance.name), kind=cleaned.get("kind", ""),
            config=cleaned.get("config") or {}, overflow=cleaned.get("overflow"),
            burst_threshold=cleaned.get("burst_threshold"),
        )
        try:
            self.secrets_token = merge_secrets(self.instance.secrets_encrypted, cleaned.get("secrets"))
            secret_values = decrypt_json(self.secrets_token)
        except SecretsUnreadable as error:
            self.add_error("secrets", str(error))
            return cleaned
        for field, message in target_errors(probe, secret_values).items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(ComputeTarget)
class ComputeTargetAdmin(admin.ModelAdmin):
    form = ComputeTargetForm
    list_display = [
        "name", "title", "kind", "enabled", "is_default", "public", "max_concurrent_steps", "overflow",
    ]
    list_filter = ["kind", "enabled", "public"]
    search_fields = ["name", "title", "description"]
    readonly_fields = ["secret_options_set", "created_at", "updated_at"]
    filter_horizontal = ["allowed_users", "allowed_groups"]
    fieldsets = [
        (None, {"fields": ["name", "title", "kind", "description", "enabled", "is_default"]}),
        ("Executor", {"fields": ["config", "secrets", "secret_options_set"]}),
        ("Who may use it", {"fields": ["public", "allowed_users", "allowed_groups"]}),
        ("Capacity", {"fields": ["max_concurrent_steps", "overflow", "burst_threshold"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # Runs and pipeline documents refer to a target by name.
        return [*self.readonly_fields, "name"] if obj is not None else self.readonly_fields

    @admin.display(description="Secret options set")
    def secret_options_set(self, obj) -> str:
        try:
            return ", ".join(secret_keys(obj)) or "none"
        except SecretsUnreadable:
            return "unreadable with the configured keys"

    def save_model(self, request, obj, form, change):
        obj.secrets_encrypted = form.secrets_token
        super().save_model(request, obj, form, change)
        if obj.is_default:
            ComputeTarget.objects.filter(is_default=True).exclude(pk=obj.pk).update(is_default=False)
