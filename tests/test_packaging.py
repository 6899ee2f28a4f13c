"""The package metadata in its current form: ``pip install`` prints no setuptools deprecation warnings.

``project.license`` as a table (``{text = …}``) made setuptools print its deprecation warning about
45 times per install (issue 19). The SPDX string form needs setuptools 77 or later to build.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_license_is_an_spdx_string_and_the_build_backend_reads_it() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in meta["project"].get("classifiers", []))
    (setuptools,) = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    version = re.search(r">=\s*(\d+)", setuptools)
    assert version is not None and int(version.group(1)) >= 77, setuptools
