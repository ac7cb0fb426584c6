"""git_dirty means a tracked file changed: untracked files (dvc.lock after `dvc repro`) leave a clone clean."""

from __future__ import annotations

import subprocess

from alignrank.tracking.provenance import git_info


def _git(repo, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
                   cwd=repo, check=True, capture_output=True)


def test_only_tracked_changes_make_a_checkout_dirty(tmp_path):
    assert git_info(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}  # not a repository
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "code.py")
    _git(tmp_path, "commit", "-q", "-m", "c")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_info(tmp_path) == {"git_commit": head, "git_dirty": "false"}
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")  # untracked, not ignored: what `dvc repro` leaves
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "x.json").write_text("{}")
    assert git_info(tmp_path)["git_dirty"] == "false"
    (tmp_path / "code.py").write_text("x = 2\n")  # a tracked file edited
    assert git_info(tmp_path)["git_dirty"] == "true"
    _git(tmp_path, "add", "code.py")  # ... and staged
    assert git_info(tmp_path)["git_dirty"] == "true"
    _git(tmp_path, "commit", "-q", "-m", "d")
    assert git_info(tmp_path)["git_dirty"] == "false"
    (tmp_path / "code.py").unlink()  # a tracked file deleted
    assert git_info(tmp_path)["git_dirty"] == "true"
