from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from apps.catalog.selectors import block_versions, blocks_latest
from blocks.spec import CATEGORIES


@login_required
def catalog(request):
    query = request.GET.get("q", "").strip().lower()
    entries = blocks_latest()
    if query:
        entries = [
            entry
            for entry in entries
            if query
            in f"{entry['latest'].block_id} {entry['latest'].title} {entry['latest'].description}".lower()
        ]
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
    return render(request, "catalog/block_detail.html", {"item": versions[0], "versions": versions})
