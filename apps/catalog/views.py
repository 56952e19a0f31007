from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from apps.catalog.search import matches
from apps.catalog.selectors import block_versions, blocks_latest
from apps.gallery.selectors import templates_all
from blocks.spec import CATEGORIES


def _searchable(item) -> str:
    return f"{item.block_id} {item.title} {item.description}"


@login_required
def catalog(request):
    query = request.GET.get("q", "").strip().lower()
    entries = blocks_latest()
    if query:
        entries = [entry for entry in entries if matches(query, _searchable(entry["latest"]))]
    entries.sort(key=lambda entry: (CATEGORIES.index(entry["latest"].category), entry["latest"].title))
    groups = [
        (category, list(items)) for category, items in groupby(entries, key=lambda e: e["latest"].category)
    ]
    return render(request, "catalog/catalog.html", {"groups": groups, "query": query})


@login_required
def block_detail(request, block_id: str):
    versions = block_versions(block_id=block_id)
    if not versions:
        raise Http404(f"no block {block_id}")
    templates = [t for t in templates_all() if any(node["block"] == block_id for node in t.document["nodes"])]
    return render(
        request,
        "catalog/block_detail.html",
        {"item": versions[0], "versions": versions, "templates": templates},
    )
