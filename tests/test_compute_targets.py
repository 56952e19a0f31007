"""Compute targets: encrypted secret options, the API (who sees and changes what), the admin."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone
from rest_framework.test import APIClient

from apps.compute.models import ComputeTarget
from apps.compute.secrets import SecretsUnreadable, decrypt_json, encrypt_json, rotate
from apps.compute.selectors import route_launches, target_config
from apps.runs.models import Run, StepRun

SECRET = "hunter2-very-secret"


@pytest.fixture
def staff(db, django_user_model):
    return django_user_model.objects.create_user(username="ops", password="ops-password-1", is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def target(name: str, **fields) -> ComputeTarget:
    return ComputeTarget.objects.create(
        name=name, title=fields.pop("title", name.title()), kind=fields.pop("kind", "celery"), **fields
    )


# --- secrets at rest ----------------------------------------------------------------------------------


def test_secrets_are_encrypted_and_decrypt_to_what_was_stored(settings):
    token = encrypt_json({"password": SECRET, "port": 22})
    assert SECRET not in token and "password" not in token
    assert decrypt_json(token) == {"password": SECRET, "port": 22}
    assert encrypt_json({}) == "" and decrypt_json("") == {}


def test_a_dedicated_key_with_the_old_ones_kept_still_opens_old_secrets_and_rotation_moves_them(settings):
    settings.ILIAD_TARGET_SECRETS_KEY = ""
    derived = encrypt_json({"password": SECRET})  # under the key derived from SECRET_KEY
    first_key, second_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ILIAD_TARGET_SECRETS_KEY = first_key
    assert decrypt_json(derived) == {"password": SECRET}  # switching to a dedicated key loses nothing
    under_first = encrypt_json({"password": SECRET})
    settings.ILIAD_TARGET_SECRETS_KEY, settings.ILIAD_TARGET_SECRETS_OLD_KEYS = second_key, [first_key]
    assert decrypt_json(under_first) == {"password": SECRET}
    rotated = rotate(under_first)
    settings.ILIAD_TARGET_SECRETS_OLD_KEYS = []
    assert decrypt_json(rotated) == {"password": SECRET}
    with pytest.raises(SecretsUnreadable, match="ILIAD_TARGET_SECRETS_OLD_KEYS"):
        decrypt_json(under_first)


def test_a_changed_secret_key_without_the_old_one_is_a_clear_error(settings):
    token = encrypt_json({"password": SECRET})
    settings.SECRET_KEY = "another secret key entirely, 50 characters long....."
    with pytest.raises(SecretsUnreadable, match="cannot be decrypted"):
        decrypt_json(token)


# --- the default target --------------------------------------------------------------------------------


def test_a_fresh_installation_has_the_default_cloud_workers_target(db):
    default = ComputeTarget.objects.get(name="celery")
    assert (default.kind, default.title, default.is_default, default.public, default.enabled) == (
        "celery",
        "Cloud workers",
        True,
        True,
        True,
    )
    assert "walltime" in default.description


# --- API: reading ----------------------------------------------------------------------------------------


def test_users_list_the_targets_they_may_use_without_configuration(user, other_user):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="hpc-users")
    user.groups.add(team)
    private = target("hpc", kind="slurm", public=False, description="The cluster", config={"partition": "x"})
    private.allowed_groups.add(team)
    mine = target("mine", public=False)
    mine.allowed_users.add(user)
    target("theirs", public=False).allowed_users.add(other_user)
    target("off", enabled=False)
    response = client_for(user).get("/api/compute-targets/")
    assert response.status_code == 200
    listed = {item["name"]: item for item in response.json()["results"]}
    assert set(listed) == {"celery", "hpc", "mine"}
    assert listed["hpc"] == {
        "name": "hpc",
        "title": "Hpc",
        "kind": "slurm",
        "description": "The cluster",
        "enabled": True,
        "is_default": False,
        "public": False,
        "max_concurrent_steps": None,
        "overflow": None,
        "burst_threshold": None,
        "steps": {"queued": 0, "running": 0},
        "config": None,
        "secret_keys": None,
    }
    assert client_for(user).get("/api/compute-targets/theirs/").status_code == 404
    assert client_for(user).get("/api/compute-targets/off/").status_code == 404
    assert client_for(user).get("/api/compute-targets/hpc/").json()["title"] == "Hpc"
    assert client_for(None).get("/api/compute-targets/").status_code in (401, 403)


def test_the_list_shows_each_targets_waiting_and_running_steps(user):
    cloud = target("cloud")
    run = Run.objects.create(
        owner=user, pipeline_version=1, pipeline_name="p", snapshot={}, target=cloud.name
    )
    for node_id, state in (("a", "queued"), ("b", "running"), ("c", "running"), ("d", "succeeded")):
        StepRun.objects.create(
            run=run,
            node_id=node_id,
            block_id="utility.noop",
            block_version="1.0.0",
            walltime_s=60,
            state=state,
            queued_at=timezone.now(),
            target=cloud.name,
        )
    item = client_for(user).get("/api/compute-targets/cloud/").json()
    assert item["steps"] == {"queued": 1, "running": 2}


# --- API: writing (staff) ---------------------------------------------------------------------------------


def test_staff_create_a_target_whose_secrets_are_write_only(staff):
    response = client_for(staff).post(
        "/api/compute-targets/",
        {
            "name": "cloud-eu",
            "title": "EU cloud",
            "kind": "celery",
            "description": "Frankfurt",
            "config": {"queue": "eu"},
            "secrets": {"broker_url": f"redis://:{SECRET}@broker:6379/0"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert SECRET not in response.content.decode()
    assert response.json()["secret_keys"] == ["broker_url"]
    assert response.json()["config"] == {"queue": "eu"}
    stored = ComputeTarget.objects.get(name="cloud-eu")
    assert SECRET not in stored.secrets_encrypted
    assert target_config(stored)["broker_url"] == f"redis://:{SECRET}@broker:6379/0"
    assert SECRET not in client_for(staff).get("/api/compute-targets/cloud-eu/").content.decode()


def test_staff_change_secrets_key_by_key_and_cannot_rename(staff):
    client = client_for(staff)
    client.post(
        "/api/compute-targets/",
        {
            "name": "cloud",
            "title": "Cloud",
            "kind": "rq",
            "secrets": {"redis_url": "redis://r:6379/0", "token": "t"},
        },
        format="json",
    )
    response = client.patch(
        "/api/compute-targets/cloud/", {"secrets": {"token": None}, "title": "Cloud 2"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["secret_keys"], response.json()["title"]) == (["redis_url"], "Cloud 2")
    renamed = client.patch("/api/compute-targets/cloud/", {"name": "elsewhere"}, format="json")
    assert renamed.status_code == 400 and "name" in renamed.json()["detail"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "celery", "config": {"queue": ""}}, "config"),
        ({"kind": "rq", "secrets": {"redis_url": "http://nope"}}, "secrets"),
        ({"kind": "celery", "overflow": "nonexistent", "burst_threshold": 1}, "overflow"),
        ({"kind": "celery", "burst_threshold": 3}, "overflow"),
        ({"kind": "celery", "overflow": "celery"}, "burst_threshold"),
        ({"kind": "quantum"}, "kind"),
    ],
)
def test_a_bad_target_is_refused_naming_the_field(staff, body, field):
    response = client_for(staff).post(
        "/api/compute-targets/", {"name": "new", "title": "New", **body}, format="json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["detail"]
    assert not ComputeTarget.objects.filter(name="new").exists()


def test_overflow_into_itself_or_in_a_circle_is_refused(staff):
    client = client_for(staff)
    target("a")
    target("b", overflow=ComputeTarget.objects.get(name="a"), burst_threshold=1)
    itself = client.patch("/api/compute-targets/a/", {"overflow": "a", "burst_threshold": 1}, format="json")
    assert itself.status_code == 400 and "itself" in itself.json()["detail"]
    circle = client.patch("/api/compute-targets/a/", {"overflow": "b", "burst_threshold": 1}, format="json")
    assert circle.status_code == 400 and "circle" in circle.json()["detail"]
    assert ComputeTarget.objects.get(name="a").overflow is None


def test_only_staff_write_targets(user):
    client = client_for(user)
    body = {"name": "mine", "title": "Mine", "kind": "celery"}
    assert client.post("/api/compute-targets/", body, format="json").status_code == 403
    assert client.patch("/api/compute-targets/celery/", {"title": "x"}, format="json").status_code == 403
    assert client.delete("/api/compute-targets/celery/").status_code == 403
    assert ComputeTarget.objects.get(name="celery").title == "Cloud workers"
    assert not ComputeTarget.objects.filter(name="mine").exists()


def test_marking_a_target_default_unmarks_the_former_default(staff):
    response = client_for(staff).post(
        "/api/compute-targets/",
        {"name": "new", "title": "New", "kind": "celery", "is_default": True},
        format="json",
    )
    assert response.status_code == 201
    assert list(ComputeTarget.objects.filter(is_default=True).values_list("name", flat=True)) == ["new"]


def test_a_target_with_waiting_steps_cannot_be_deleted(staff, user):
    busy = target("busy")
    run = Run.objects.create(owner=user, pipeline_version=1, pipeline_name="p", snapshot={}, target=busy.name)
    StepRun.objects.create(
        run=run,
        node_id="a",
        block_id="utility.noop",
        block_version="1.0.0",
        walltime_s=60,
        state="queued",
        target=busy.name,
    )
    response = client_for(staff).delete("/api/compute-targets/busy/")
    assert response.status_code == 409 and "waiting" in response.json()["detail"]
    target("idle")
    assert client_for(staff).delete("/api/compute-targets/idle/").status_code == 204
    assert not ComputeTarget.objects.filter(name="idle").exists()


# --- routing ---------------------------------------------------------------------------------------------


def test_a_target_without_bursting_routes_to_itself(db):
    name, executor = route_launches("celery", [])
    assert (name, executor.kind) == ("celery", "celery")


# --- admin -----------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(db, django_user_model, client):
    admin = django_user_model.objects.create_superuser(username="root", password="root-password-1")
    client.force_login(admin)
    return client


def _admin_form(**fields) -> dict:
    form = {
        "name": "hpc",
        "title": "HPC",
        "kind": "celery",
        "description": "",
        "config": "{}",
        "enabled": "on",
        "public": "on",
        "max_concurrent_steps": "",
        "overflow": "",
        "burst_threshold": "",
        "secrets": "",
    }
    form.update(fields)
    return form


def test_the_admin_takes_secrets_but_never_shows_them(admin_client):
    response = admin_client.post(
        "/admin/compute/computetarget/add/",
        _admin_form(secrets=f'{{"broker_url": "redis://:{SECRET}@h:6379/0"}}'),
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    hpc = ComputeTarget.objects.get(name="hpc")
    assert target_config(hpc)["broker_url"].endswith("@h:6379/0")
    page = admin_client.get(f"/admin/compute/computetarget/{hpc.pk}/change/").content.decode()
    assert SECRET not in page and "broker_url" in page
    # Saving with the secrets field left empty keeps them.
    response = admin_client.post(f"/admin/compute/computetarget/{hpc.pk}/change/", _admin_form(title="HPC 2"))
    assert response.status_code == 302
    assert target_config(ComputeTarget.objects.get(name="hpc"))["broker_url"].endswith("@h:6379/0")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"config": '{"queue": ""}'}, "queue"),
        ({"secrets": "[1, 2]"}, "JSON object"),
        ({"burst_threshold": "2"}, "overflow target"),
    ],
)
def test_the_admin_refuses_a_bad_target_saying_why(admin_client, fields, message):
    response = admin_client.post("/admin/compute/computetarget/add/", _admin_form(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ComputeTarget.objects.filter(name="hpc").exists()


def test_the_admin_refuses_an_overflow_cycle(admin_client):
    a = target("a")
    target("b", overflow=a, burst_threshold=1)
    b = ComputeTarget.objects.get(name="b")
    response = admin_client.post(
        f"/admin/compute/computetarget/{a.pk}/change/",
        _admin_form(name="a", title="A", overflow=str(b.pk), burst_threshold="1"),
    )
    assert response.status_code == 200
    assert "circle" in response.content.decode()
    assert ComputeTarget.objects.get(name="a").overflow is None


def test_rotating_re_encrypts_every_targets_secrets_with_the_new_key(db, settings, staff):
    from django.core.management import call_command

    from apps.compute.services import target_save

    settings.ILIAD_TARGET_SECRETS_KEY = old_key = Fernet.generate_key().decode()
    cloud = target_save(fields={"name": "cloud", "title": "Cloud", "kind": "rq"}, secrets={"token": SECRET})
    settings.ILIAD_TARGET_SECRETS_KEY = Fernet.generate_key().decode()
    settings.ILIAD_TARGET_SECRETS_OLD_KEYS = [old_key]
    call_command("compute_rotate_secrets", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.ILIAD_TARGET_SECRETS_OLD_KEYS = []
    cloud.refresh_from_db()
    assert target_config(cloud)["token"] == SECRET
