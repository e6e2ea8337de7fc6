#!/usr/bin/env python3
"""Check the layout rules the code keeps (docs/contributing.md): exit 1, naming each breach, when one does not hold.

Usage: python scripts/check_layout.py

- no two modules in server/tao_server (or in client/tao_client) share a file name;
- no Python module in server/ is over MAX_MODULE_LINES lines;
- no function in server/ or client/ is over MAX_FUNCTION_LINES lines;
- the server never imports the client's private modules (tao_client._*): what both need is in tao_common;
- tao_common imports nothing but the standard library and itself;
- only backends/docker/ imports docker-py (and requests, urllib3); only api/, ui/ and app.py import
  the web framework (fastapi, starlette): services and the job core never see either;
- every package directory is listed in pyproject.toml's setuptools packages.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
PACKAGE_ROOTS = {"tao_server": "server/tao_server", "tao_client": "client/tao_client", "tao_common": "common/tao_common"}


def modules(root: str) -> list[Path]:
    return sorted(path for path in (ROOT / root).rglob("*.py") if "__pycache__" not in path.parts)


def same_names(root: str) -> list[str]:
    counts = Counter(path.name for path in modules(root) if path.name != "__init__.py")
    return [f"{root}: {count} modules named {name}" for name, count in sorted(counts.items()) if count > 1]


def long_modules(root: str) -> list[str]:
    found = []
    for path in modules(root):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_MODULE_LINES})")
    return found


def long_functions(root: str) -> list[str]:
    found = []
    for path in modules(root):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
                length = node.end_lineno - first + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} is {length} lines (at most {MAX_FUNCTION_LINES})")
    return found


def imported(path: Path, at_run_time: bool = False) -> list[str]:
    """The modules `path` imports (and the names it takes from them); with `at_run_time`, not those under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    if at_run_time:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                node.body = []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def client_private_imports() -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: imports {name}; what client and server share belongs in tao_common"
        for path in modules("server")
        for name in imported(path)
        if name.startswith("tao_client._")
    ]


def common_imports() -> list[str]:
    allowed = set(sys.stdlib_module_names) | {"tao_common", "__future__"}
    return [
        f"{path.relative_to(ROOT)}: imports {name}; tao_common takes the standard library only"
        for path in modules("common/tao_common")
        for name in imported(path)
        if name.split(".")[0] not in allowed
    ]


# A library, and the only places in server/tao_server that may import it.
CONFINED = {
    "docker": ("backends/docker/",),
    "requests": ("backends/docker/",),
    "urllib3": ("backends/docker/",),
    "fastapi": ("api/", "ui/", "app.py"),
    "starlette": ("api/", "ui/", "app.py"),
}


def confined_imports() -> list[str]:
    found = []
    root = ROOT / "server" / "tao_server"
    for path in modules("server/tao_server"):
        where = str(path.relative_to(root))
        for name in imported(path, at_run_time=True):
            places = CONFINED.get(name.split(".")[0])
            if places is not None and not where.startswith(places) and not where.startswith("testing/"):
                found.append(f"server/tao_server/{where}: imports {name}, which only {', '.join(places)} may")
    return sorted(set(found))


def unlisted_packages() -> list[str]:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = []
    for name, root in [*PACKAGE_ROOTS.items(), ("tao_server.migrations", "migrations")]:
        for init in (ROOT / root).rglob("__init__.py"):
            package = ".".join([name, *init.parent.relative_to(ROOT / root).parts])
            if package not in listed:
                found.append(f"{package}: a package pyproject.toml's [tool.setuptools] packages does not list")
    return found


def problems() -> list[str]:
    return [
        *same_names("server/tao_server"),
        *same_names("client/tao_client"),
        *long_modules("server"),
        *long_functions("server"),
        *long_functions("client"),
        *client_private_imports(),
        *common_imports(),
        *confined_imports(),
        *unlisted_packages(),
    ]


def main() -> int:
    found = problems()
    print("\n".join(found) or "check_layout: every rule holds")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
