from django import template

register = template.Library()


@register.inclusion_tag("delivery/_run_panel.html", takes_context=True)
def delivery_panel(context, run):
    """The delivery panel of the run page: where the results go, how it went, the report, and
    "Deliver again"."""
    from apps.delivery.apis import run_delivery_data
    from apps.delivery.services import spaces_writable_by

    user = context["request"].user
    data = run_delivery_data(run, user)
    spaces = list(spaces_writable_by(user=user).values("name", "title")) if data["may_deliver"] else []
    return {"run": run, "delivery": data, "spaces": spaces, "request": context["request"]}
