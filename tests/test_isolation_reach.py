"""Whether the isolated steps' user can reach the installation: a directory closed to others on the
way (a checkout under /root, a ``mktemp -d`` folder) makes steps keep the worker's user instead of
failing every step with "Permission denied"."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from apps.compute.isolation import unreachable_path

NOBODY = 65534


@pytest.fixture
def tmp_path():
    """A folder in /tmp open to others (pytest's own live under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="iliad-reach-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_directory_closed_to_others_on_the_way_is_named(tmp_path):
    closed = tmp_path / "closed"
    (closed / "home" / "artifacts").mkdir(parents=True)
    closed.chmod(0o700)
    target = closed / "home" / "artifacts"
    assert unreachable_path(NOBODY, [target], hidden=[]) == (target, closed)


def test_directories_inside_a_hidden_root_do_not_count(tmp_path):
    home = tmp_path / "home"
    (home / "artifacts").mkdir(parents=True)
    home.chmod(0o700)  # the child sees a fresh file system here, with its directories mounted back
    assert unreachable_path(NOBODY, [home / "artifacts"], hidden=[home]) is None


def test_open_directories_and_the_users_own_are_reachable(tmp_path):
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    os.chown(own, NOBODY, NOBODY)
    assert unreachable_path(NOBODY, [own / "not-yet-made"], hidden=[]) is None
