from django.db import migrations, models
from django.db.models import F


def mark_dispatched(apps, schema_editor):
    """Steps queued or running before fair sharing were all sent to the broker when they were queued."""
    StepRun = apps.get_model("runs", "StepRun")
    StepRun.objects.filter(state__in=("queued", "running")).update(dispatched_at=F("queued_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0003_steprun_walltime_s"),
    ]

    operations = [
        migrations.AddField(
            model_name="steprun",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When it was last sent to its compute target; empty while it is queued but held "
                "back by its user's fair share of the workers (ILIAD_FAIR_STEPS_PER_USER).",
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="steprun",
            index=models.Index(fields=["state", "dispatched_at"], name="runs_stepru_state_624895_idx"),
        ),
        migrations.RunPython(mark_dispatched, migrations.RunPython.noop),
    ]
