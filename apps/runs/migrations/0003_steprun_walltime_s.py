from django.db import migrations, models

DEFAULT_WALLTIME_S = 3600
"""blocks.spec.Resources' default, for steps whose frozen spec says nothing."""


def walltime_from_snapshot(apps, schema_editor):
    """Steps submitted before walltimes were stored get their block's walltime from the run snapshot."""
    Run = apps.get_model("runs", "Run")
    StepRun = apps.get_model("runs", "StepRun")
    for run_id, snapshot in Run.objects.values_list("id", "snapshot").iterator(chunk_size=200):
        for key, spec in (snapshot.get("blocks") or {}).items():
            walltime_s = (spec.get("resources") or {}).get("walltime_s", DEFAULT_WALLTIME_S)
            if walltime_s != DEFAULT_WALLTIME_S:
                block_id, _, version = key.rpartition("@")
                StepRun.objects.filter(run_id=run_id, block_id=block_id, block_version=version).update(
                    walltime_s=walltime_s
                )


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0002_steprun_heartbeat_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="steprun",
            name="walltime_s",
            field=models.PositiveIntegerField(
                default=DEFAULT_WALLTIME_S,
                help_text="Seconds one attempt may run: its block's walltime, frozen at submit.",
            ),
            preserve_default=False,
        ),
        migrations.RunPython(walltime_from_snapshot, migrations.RunPython.noop),
    ]
