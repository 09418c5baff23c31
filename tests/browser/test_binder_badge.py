"""Binder's and Colab's doors: the README's Binder badge opens the index in JupyterLab at a release tag (Binder
builds once per release, not once per commit), ``make binder`` rebuilds what Binder builds from the same files,
and the README and the index open each notebook on Colab at the same tag. (No browser needed; the rebuild
itself is too slow for ``make test``: run ``make binder BINDER_CHECK=1``.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from lnedu import colab
from lnedu.notebooks import find_notebooks

ROOT = Path(__file__).resolve().parents[2]
TAG = colab.TAG
BADGE = re.compile(r"\[!\[Binder\]\(https://mybinder\.org/badge_logo\.svg\)\]\((https://mybinder\.org/v2/gh/[^)]+)\)")


def test_readme_badge_opens_jupyterlab_on_the_index():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    badges = BADGE.findall(readme)
    assert len(badges) == 1, "the README should carry one Binder badge"
    url = urlparse(badges[0])
    owner, repo, ref = url.path.split("/")[3:6]
    assert owner and repo and ref == TAG, f"the badge should open the release tag {TAG} (Binder builds once per tag)"
    assert "git tag" in readme and "git push --tags" in readme, "say in the README how to make the release tag"
    if (owner, repo) == ("OWNER", "REPO"):  # the placeholder must come with the instructions to replace it
        assert "OWNER/REPO" in readme.split(badges[0], 1)[1], "say in the README how to fill in OWNER/REPO"
    (urlpath,) = parse_qs(url.query)["urlpath"]
    assert urlpath == "lab/tree/notebooks/00-index.ipynb"
    assert (ROOT / urlpath.removeprefix("lab/tree/")).is_file()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_binder_builds_from_the_binder_files_in_binders_order():
    res = subprocess.run(["make", "-n", "binder", "BINDER_CHECK=1"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    steps = ["rm -rf .binder-venv", "-m venv .binder-venv", "pip install -q -r binder/requirements.txt",
             "binder/postBuild", "import sys, lnedu, ipywidgets", "labextension list"]
    at = [res.stdout.find(s) for s in steps]
    assert -1 not in at, f"missing steps: {[s for s, i in zip(steps, at) if i < 0]}\n{res.stdout}"
    assert at == sorted(at), f"steps out of order:\n{res.stdout}"


def test_readme_and_index_open_every_notebook_on_colab_at_the_release_tag():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (ROOT / "notebooks" / "00-index.ipynb").read_text(encoding="utf-8")
    m = BADGE.search(readme)
    owner, repo = urlparse(m.group(1)).path.split("/")[3:5] if m else (colab.REPO.split("/"))
    assert f"{owner}/{repo}" == colab.REPO, f"colab.REPO ({colab.REPO}) and Binder's badge ({owner}/{repo}) differ"
    for path in find_notebooks(ROOT / "notebooks"):
        url = colab.colab_url(path.name)
        assert colab.colab_badge(path.name) in readme, f"README: no Open-in-Colab badge for {path.name}"
        assert url in index, f"00-index: no Open-in-Colab link for {path.name} (colab.colab_badge(name, image=False))"
