"""The editor's per-node "Compute target" select: the targets the user may use, each with its title and
description, written into the pipeline document as the node's ``target``."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from apps.compute.models import ComputeTarget
from tests.browser.conftest import editor_document, node_locator, open_editor


def test_a_node_runs_where_its_compute_target_select_says(portal, page, page_errors, user, other_user):
    # A transactional test before this one may have emptied the table the data migration filled.
    ComputeTarget.objects.get_or_create(
        name="celery",
        defaults={
            "title": "Cloud workers",
            "kind": "celery",
            "is_default": True,
            "description": "Within the walltime.",
        },
    )
    ComputeTarget.objects.create(
        name="hpc",
        title="HPC cluster",
        kind="celery",
        public=False,
        description="The national cluster: long queues, big memory.",
    ).allowed_users.add(user)
    ComputeTarget.objects.create(name="secret-lab", title="Someone else's lab", kind="celery", public=False)
    open_editor(page, f"{portal}/pipelines/new/")
    page.get_by_role("button", name=re.compile("^Add Demo ocean dataset")).press("Enter")
    node_locator(page, "demo_dataset").locator(".block-title").click()

    select = page.get_by_label("Compute target")
    expect(select.locator("option")).to_have_text(
        ["Run's target (default: Cloud workers)", "Cloud workers", "HPC cluster"]
    )
    expect(page.locator("#node-target-description")).to_contain_text("walltime")  # the default's
    select.select_option(label="HPC cluster")
    expect(page.locator("#node-target-description")).to_have_text(
        "The national cluster: long queues, big memory."
    )
    page.wait_for_function("() => window.iliadEditor.document().nodes[0].target === 'hpc'")

    select.select_option(value="")
    page.wait_for_function("() => !('target' in window.iliadEditor.document().nodes[0])")
    assert "target" not in editor_document(page)["nodes"][0]
    assert page_errors == []
