"""Which lit_rl modules does the default test tier (``pytest -m "not slow"``, what ``make test`` and CI
run) reach? Lists those it does not.

    python tests/module_census.py          # exit status 1 if a module is not reached

A module counts as reached when a test file with at least one default-tier test imports it (directly,
through other modules, or through a ``tools/`` script it imports), or names it as a dotted path (a class
path given to the CLI, ``-m lit_rl``), or when a config the CLI test runs names it. The check is on
imports, not on lines executed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOL_IMPORT = re.compile(r"^\s*(?:import|from tools import) (\w+)\s*$", re.MULTILINE)  # tools/ scripts tests run
DOTTED = re.compile(r"\blit_rl(?:\.[A-Za-z_][A-Za-z0-9_]*)+|-m\", \"lit_rl\b|-m lit_rl\b")

CLOSURE = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):  # a module, or a class in a module
        try:
            importlib.import_module(".".join(parts[:end]))
            break
        except ImportError:
            continue
print(json.dumps(sorted(m for m in sys.modules if m == "lit_rl" or m.startswith("lit_rl."))))
"""


def all_modules() -> list[str]:
    names = []
    for path in sorted((REPO / "lit_rl").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def default_tier_files() -> list[Path]:
    """Test files with at least one test selected by ``-m "not slow"``."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted({REPO / line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line})


def reached_modules(files: list[Path]) -> list[str]:
    names = [".".join(p.relative_to(REPO).with_suffix("").parts) for p in files]  # the test modules
    texts = [p.read_text() for p in files]
    texts += [p.read_text() for p in (REPO / "configs").rglob("*.yaml")]  # run by the CLI test
    for text in texts:
        names += [f"tools.{name}" for name in TOOL_IMPORT.findall(text) if (REPO / "tools" / f"{name}.py").is_file()]
        for match in DOTTED.findall(text):
            names.append("lit_rl.__main__" if "-m" in match else match)
    proc = subprocess.run(
        [sys.executable, "-c", CLOSURE, json.dumps(names)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> int:
    files = default_tier_files()
    reached = set(reached_modules(files))
    missing = [m for m in all_modules() if m not in reached]
    print(f"{len(files)} test files in the default tier reach {len(reached)} of {len(all_modules())} lit_rl modules")
    for name in missing:
        print(f"not reached by the default tier: {name}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
