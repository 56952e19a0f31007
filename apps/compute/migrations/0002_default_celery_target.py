"""The target of a fresh installation: the Celery queue "celery" that `make run` and the compose file's
worker serve."""

from django.db import migrations

DESCRIPTION = (
    "The portal's own workers in the cloud. Steps start within seconds and may use a few CPU cores "
    "and some gigabytes of memory each; a step is stopped once it runs longer than its block's "
    "walltime. Pick it for preprocessing, analyses and small models."
)


def create_default_target(apps, schema_editor):
    ComputeTarget = apps.get_model("compute", "ComputeTarget")
    if not ComputeTarget.objects.filter(name="celery").exists():
        ComputeTarget.objects.create(
            name="celery", title="Cloud workers", kind="celery", description=DESCRIPTION,
            is_default=not ComputeTarget.objects.filter(is_default=True).exists(), public=True, enabled=True,
        )


class Migration(migrations.Migration):
    dependencies = [("compute", "0001_compute_targets")]

    operations = [migrations.RunPython(create_default_target, migrations.RunPython.noop)]
