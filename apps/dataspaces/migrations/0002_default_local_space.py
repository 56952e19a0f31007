"""Today's data directory (``ILIAD_DATA_DIR``) becomes the default local data space, public to every
signed-in user, so existing pipelines' plain paths keep working and the browser shows it."""

from django.db import migrations


def create_default_space(apps, schema_editor):
    DataSpace = apps.get_model("dataspaces", "DataSpace")
    if (
        DataSpace.objects.filter(is_default_store=True).exists()
        or DataSpace.objects.filter(name="data").exists()
    ):
        return
    DataSpace.objects.create(
        name="data",
        title="Portal data space",
        kind="local",
        access="public",
        is_default_store=True,
        config={"read_only": True},  # root empty: settings.ILIAD_DATA_DIR wherever the portal runs
        description="The portal's own data: demo datasets and files the administrators put there.",
    )


def remove_default_space(apps, schema_editor):
    apps.get_model("dataspaces", "DataSpace").objects.filter(name="data", is_default_store=True).delete()


class Migration(migrations.Migration):
    dependencies = [("dataspaces", "0001_data_spaces")]
    operations = [migrations.RunPython(create_default_space, remove_default_space)]
