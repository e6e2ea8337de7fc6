#!/usr/bin/env python3
"""Vendor the web libraries the daemon serves and the docs site loads, from npm packages: no CDN at run time.

Usage: python scripts/vendor_web.py          fetch each package with `npm pack`, copy its files, record them
       python scripts/vendor_web.py --check  the files on disk are the ones recorded (no network)

A GPU box is often air-gapped: every script and stylesheet a page of the daemon loads ships inside
the package, and every one the documentation site loads (mermaid, for its diagrams) ships inside the site. `vendored.json` beside the files names each one's package, version and SHA-256, so a
file edited by hand, or a version bumped here without re-vendoring, is noticed by the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package -> (version, {file in the package: path in this repository})
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "redoc": (
        "2.5.2",
        {
            "bundles/redoc.standalone.js": "server/tao_server/api/viewers/redoc.standalone.js",
            "LICENSE": "server/tao_server/api/viewers/LICENSE.redoc",
        },
    ),
    "swagger-ui-dist": (
        "5.36.0",
        {
            "swagger-ui-bundle.js": "server/tao_server/api/viewers/swagger-ui-bundle.js",
            "swagger-ui.css": "server/tao_server/api/viewers/swagger-ui.css",
            "LICENSE": "server/tao_server/api/viewers/LICENSE.swagger-ui",
        },
    ),
    # The dashboard's training charts (a job's page): small, no dependencies, draws on a canvas with no inline style or script.
    "uplot": (
        "1.6.32",
        {
            "dist/uPlot.iife.min.js": "server/tao_server/ui/static/uPlot.iife.min.js",
            "dist/uPlot.min.css": "server/tao_server/ui/static/uPlot.min.css",
            "LICENSE": "server/tao_server/ui/static/LICENSE.uplot",
        },
    ),
    # The documentation site's diagrams (docs/architecture.md): mkdocs-material would fetch mermaid from a CDN,
    # unless the page has it already (mkdocs.yml's extra_javascript). Its major version is the one material expects.
    "mermaid": (
        "11.17.2",
        {
            "dist/mermaid.min.js": "docs/assets/javascripts/mermaid.min.js",
            "LICENSE": "docs/assets/javascripts/LICENSE.mermaid",
        },
    ),
}
RECORD = ROOT / "server/tao_server/api/viewers/vendored.json"


def vendor() -> dict[str, dict[str, str]]:
    record: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for package, (version, files) in PACKAGES.items():
            packed = subprocess.run(
                ["npm", "pack", "--silent", f"{package}@{version}"], cwd=scratch, check=True, capture_output=True, text=True
            ).stdout.split()[-1]
            with tarfile.open(Path(scratch) / packed) as tar:
                for inside, target in files.items():
                    member = tar.extractfile(f"package/{inside}")
                    if member is None:
                        sys.exit(f"vendor_web: {package}@{version} has no file {inside}")
                    data = member.read()
                    (ROOT / target).parent.mkdir(parents=True, exist_ok=True)
                    (ROOT / target).write_bytes(data)
                    record[target] = {"package": f"{package}@{version}", "file": inside, "sha256": hashlib.sha256(data).hexdigest()}
    RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def problems() -> list[str]:
    """What differs between the recorded files and this table or the disk; empty when all is in order."""
    record = json.loads(RECORD.read_text())
    wanted = {target: f"{package}@{version}" for package, (version, files) in PACKAGES.items() for target in files.values()}
    found = []
    for target, package in wanted.items():
        entry = record.get(target)
        if entry is None or entry["package"] != package:
            found.append(f"{target}: recorded from {entry and entry['package']}, wanted {package}; run scripts/vendor_web.py")
            continue
        path = ROOT / target
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            found.append(f"{target}: not the file {package} ships; run scripts/vendor_web.py")
    found += [f"{target}: recorded, but no package here ships it" for target in record.keys() - wanted.keys()]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare the files with the record; fetch nothing")
    if parser.parse_args().check:
        found = problems()
        print("\n".join(found) or "vendor_web: every vendored file is the one recorded")
        return 1 if found else 0
    for target, entry in vendor().items():
        print(f"{entry['package']:<24} {entry['file']:<32} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
