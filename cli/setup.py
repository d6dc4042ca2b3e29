"""``jidoka setup judge [PATH]``: propose ``hooks.verify`` and the ``judge:`` section for a repository.

It looks at the project folder (the top level, and one level of subfolders for a second project
such as ``frontend/``), recognises the common layouts (Python, Node with jest or vitest, Go,
Rust) and prints a YAML fragment to paste into WORKFLOW.md: the command that runs the tests and
writes a JUnit report, where that report lands, and the paths an agent must not change to make
verify pass (the tests, the runner's settings, CI, lint rules). It never writes a file.

Detection never follows a symbolic link (a link is noted, never read) and reads no file larger
than 1 MiB: the folder may hold anything, and the proposal is only text for a person to review.
``propose`` is pure detection; ``render_yaml`` and ``render_json`` only print.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import textwrap
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.errors import CliError, SubParsers

COMMAND = ("setup", "judge")
"""The command's words: ``jidoka setup judge`` (plain ``jidoka setup`` still registers the search
attributes, as deploy scripts expect)."""
MAX_READ_BYTES = 1024 * 1024
"""Files larger than this are not read (their presence still counts)."""
MAX_ENTRIES = 5000
"""Entries read from one folder; the rest are ignored (and noted)."""
MAX_SUBFOLDERS = 200
"""Subfolders looked into for a second project."""
DEFAULT_REPORT = ".jidoka-reports/junit.xml"
NEXTEST_STORE = "target/nextest/ci"

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
"""Subfolder names used in globs: no glob characters, no spaces, nothing YAML or a shell minds."""
_SAFE_GLOB = re.compile(r"^[A-Za-z0-9._*/-]+$")
_SKIPPED_SUBFOLDERS = frozenset(
    {
        "node_modules", "vendor", "target", "dist", "build", "out", "venv", "env", "site-packages",
        "__pycache__", "tests", "test", "__tests__", "testdata", "fixtures", "docs", "doc",
        "examples", "example", "samples",
    }
)  # fmt: skip
"""Never a second project: installed dependencies, build output, test fixtures, and the
documentation and examples (a ``docs/requirements.txt`` is not a Python project to test)."""

PYTHON_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini")
PYTHON_VERIFY = 'python -m pytest -q -p no:cacheprovider --junitxml="$JIDOKA_TEST_REPORT"'
JEST_VERIFY = (
    'JEST_JUNIT_OUTPUT_FILE="$JIDOKA_TEST_REPORT" '
    "npx jest --ci --reporters=default --reporters=jest-junit"
)
VITEST_VERIFY = 'npx vitest run --reporter=junit --outputFile="$JIDOKA_TEST_REPORT"'
NPM_VERIFY = "npm test"
GO_VERIFY = 'gotestsum --junitfile "$JIDOKA_TEST_REPORT" ./...'
RUST_VERIFY = "cargo nextest run --profile ci"
GENERIC_VERIFY = (
    'echo "hooks.verify: run the tests and write JUnit XML to $JIDOKA_TEST_REPORT" >&2; exit 1'
)

NODE_LOCKFILES = (
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock",
    "bun.lockb",
)  # fmt: skip
CONFIG_SUFFIXES = (".js", ".cjs", ".mjs", ".ts", ".cts", ".mts", ".json")
CI_FILES = {
    ".gitlab-ci.yml": "GitLab CI",
    ".travis.yml": "Travis CI",
    "azure-pipelines.yml": "Azure Pipelines",
    "bitbucket-pipelines.yml": "Bitbucket Pipelines",
    "Jenkinsfile": "Jenkins",
    ".pre-commit-config.yaml": "pre-commit hooks",
}
CI_FOLDERS = {
    ".github/workflows": "GitHub Actions",
    ".circleci": "CircleCI",
    ".buildkite": "Buildkite",
}
LINT_FILES = {
    "ruff.toml": "ruff's lint rules",
    ".ruff.toml": "ruff's lint rules",
    ".flake8": "flake8's lint rules",
    ".pylintrc": "pylint's lint rules",
    "mypy.ini": "mypy's type-checking settings",
    "pyrightconfig.json": "pyright's type-checking settings",
    "tsconfig.json": "TypeScript's compiler settings (strictness, what compiles)",
    "biome.json": "Biome's lint rules",
    ".golangci.yml": "golangci-lint's rules",
    ".golangci.yaml": "golangci-lint's rules",
    "clippy.toml": "clippy's lint settings",
}
LINT_PREFIXES = {".eslintrc": "ESLint's rules", "eslint.config.": "ESLint's rules"}

# -- what was found ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Protected:
    """One proposed protected path and why."""

    glob: str
    reason: str


@dataclass(frozen=True)
class Layout:
    """One project found: a kind (python, node, go, rust) in a folder (``.`` is the top)."""

    kind: str
    folder: str
    runner: str | None
    verify: str
    test_report: str
    protected: tuple[Protected, ...]
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        runner = f" ({self.runner})" if self.runner else ""
        where = "the top folder" if self.folder == "." else f"{self.folder}/"
        return f"{self.kind}{runner} in {where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "folder": self.folder,
            "runner": self.runner,
            "verify": self.verify,
            "test_report": self.test_report,
        }


@dataclass(frozen=True)
class Proposal:
    """What ``jidoka setup`` proposes for one folder."""

    path: str
    layouts: tuple[Layout, ...]
    verify: str
    test_report: str
    protected: tuple[Protected, ...]
    notes: tuple[str, ...]

    @property
    def detected(self) -> bool:
        return bool(self.layouts)

    def judge(self) -> dict[str, Any]:
        """The ``judge:`` section, shaped as ``jidoka.config.JudgeConfig``."""
        return {
            "protected_paths": [p.glob for p in self.protected],
            "test_report": self.test_report,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "layouts": [layout.to_json() for layout in self.layouts],
            "verify": self.verify,
            "judge": self.judge(),
            "notes": list(self.notes),
            "reasons": {p.glob: p.reason for p in self.protected},
        }


# -- reading the folder without following links ------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """The entries of one folder, by type; a symbolic link is neither a file nor a folder."""

    files: frozenset[str] = frozenset()
    dirs: frozenset[str] = frozenset()
    links: frozenset[str] = frozenset()
    truncated: bool = False


def list_folder(folder: Path) -> Listing:
    files: set[str] = set()
    dirs: set[str] = set()
    links: set[str] = set()
    truncated = False
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_ENTRIES:
                    truncated = True
                    break
                if entry.is_symlink():
                    links.add(entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    dirs.add(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    files.add(entry.name)
    except OSError:
        return Listing()
    return Listing(frozenset(files), frozenset(dirs), frozenset(links), truncated)


def is_real_dir(root: Path, relative: str) -> bool:
    """Whether ``relative`` (``a/b``) is a folder under ``root`` with no link on the way."""
    current = root
    for part in relative.split("/"):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return False
        if not stat.S_ISDIR(mode):
            return False
    return True


def read_text(root: Path, relative: str) -> str | None:
    """The text of a regular file under ``root``, or None: a link (anywhere on the path), a
    file over 1 MiB, or anything unreadable is not read."""
    parent = relative.rpartition("/")[0]
    if parent and not is_real_dir(root, parent):
        return None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(root / relative, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_READ_BYTES:
                return None
            data = file.read(MAX_READ_BYTES + 1)
        except OSError:
            return None
    if len(data) > MAX_READ_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


@dataclass
class Folder:
    """One folder being looked at: the repository's root, where it is, what it holds."""

    root: Path
    relative: str
    listing: Listing
    notes: list[str] = field(default_factory=list[str])

    def has_file(self, name: str) -> bool:
        return name in self.listing.files

    def has_dir(self, name: str) -> bool:
        return name in self.listing.dirs

    @property
    def where(self) -> str:
        return "the top folder" if self.relative == "." else f"{self.relative}/"

    def shown(self, name: str) -> str:
        """A name as the user knows it from the repository's top."""
        return name if self.relative == "." else f"{self.relative}/{name}"

    def at(self, glob: str) -> str:
        """A glob for something in this folder (a bare name at the top matches any folder)."""
        return glob if self.relative == "." else f"{self.relative}/{glob}"

    def anywhere(self, glob: str) -> str:
        """A glob for a name in this folder or any folder below it."""
        if self.relative == ".":
            return glob
        return f"{self.relative}/{glob}" if glob.startswith("**/") else f"{self.relative}/**/{glob}"

    def command(self, verify: str) -> str:
        return verify if self.relative == "." else f"cd {self.relative} && {verify}"

    def read(self, name: str) -> str | None:
        if name in self.listing.links:
            self.notes.append(f"{self.shown(name)} is a symbolic link: not read")
            return None
        if not self.has_file(name):
            return None
        text = read_text(self.root, self.shown(name))
        if text is None:
            self.notes.append(f"{self.shown(name)} is larger than 1 MiB or unreadable: not read")
        return text

    def read_toml(self, name: str) -> dict[str, Any] | None:
        text = self.read(name)
        if text is None:
            return None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            self.notes.append(f"{self.shown(name)} does not parse as TOML ({error})")
            return None

    def files_like(self, prefix: str, suffixes: Iterable[str] = ("",)) -> list[str]:
        return sorted(
            name
            for name in self.listing.files
            if name.startswith(prefix) and any(name.endswith(s) for s in suffixes)
        )


def _table(value: object, *keys: str) -> dict[str, Any]:
    """``value[k1][k2]...`` when every step is a table, else an empty one."""
    current: object = value
    for key in keys:
        if not isinstance(current, dict):
            return {}
        current = current.get(key)  # pyright: ignore[reportUnknownMemberType]
    return current if isinstance(current, dict) else {}  # pyright: ignore[reportUnknownVariableType]


# -- the layouts -------------------------------------------------------------------------------


def python_layout(folder: Folder) -> Layout | None:
    requirements = folder.files_like("requirements", (".txt",))
    found = [name for name in PYTHON_MARKERS if folder.has_file(name)] + requirements
    found += folder.files_like("test_", (".py",))  # a project that is only modules and tests
    if not found:
        return None
    protected: list[Protected] = []
    top_tests = folder.files_like("test_", (".py",)) + sorted(
        n for n in folder.listing.files if n.endswith("_test.py")
    )
    test_dirs = [name for name in ("tests", "test") if folder.has_dir(name)]
    for name in test_dirs:
        protected.append(
            Protected(
                folder.at(f"{name}/**"),
                f"found {folder.shown(name)}/: the tests verify runs; "
                "a weakened or deleted test passes anything",
            )
        )
    has_tests = bool(test_dirs or top_tests or folder.has_file("conftest.py"))
    if has_tests:
        protected.append(
            Protected(
                folder.anywhere("conftest.py"),
                "pytest loads every conftest.py: a fixture or hook there can skip or rewrite tests",
            )
        )
        if top_tests:
            protected.append(
                Protected(
                    folder.anywhere("test_*.py"),
                    f"found {folder.shown(top_tests[0])}: pytest collects test_*.py in any folder",
                )
            )
            protected.append(
                Protected(
                    folder.anywhere("*_test.py"), "pytest collects *_test.py in any folder too"
                )
            )
    protected.extend(_python_settings(folder))
    notes = [
        "verify runs in a fresh checkout, where nothing is installed: `python` must be an "
        "interpreter with pytest and the project's dependencies (a virtualenv's python by its "
        "full path, for example)"
    ]
    if not has_tests:
        notes.append(
            f"no tests found in {folder.where} (no tests/ or test/ folder, no conftest.py, no "
            "test_*.py): pytest exits 5 when it collects nothing, so verify would fail"
        )
    return Layout(
        kind="python",
        folder=folder.relative,
        runner="pytest",
        verify=folder.command(PYTHON_VERIFY),
        test_report=DEFAULT_REPORT,
        protected=tuple(protected),
        notes=tuple(notes),
    )


def _python_settings(folder: Folder) -> list[Protected]:
    protected: list[Protected] = []
    settled = False
    if folder.has_file("pyproject.toml"):
        pyproject = folder.read_toml("pyproject.toml")
        if _table(pyproject, "tool", "pytest"):
            why = "its [tool.pytest] settings decide what pytest collects and how"
            settled = True
        else:
            why = "the place for [tool.pytest] settings, which would decide what runs"
        protected.append(
            Protected(folder.at("pyproject.toml"), f"found {folder.shown('pyproject.toml')}: {why}")
        )
    for name in ("pytest.ini", ".pytest.ini"):
        # Absent or not, a new one would win over every other settings file.
        found = f"found {folder.shown(name)}" if folder.has_file(name) else "even absent"
        protected.append(
            Protected(folder.at(name), f"{found}: pytest's own settings file wins over the others")
        )
    reasons = {
        "setup.cfg": "a [tool:pytest] section here configures pytest",
        "tox.ini": "a [pytest] section here configures pytest; tox environments run the tests",
    }
    for name, why in reasons.items():
        if folder.has_file(name):
            protected.append(Protected(folder.at(name), f"found {folder.shown(name)}: {why}"))
        elif not settled:
            protected.append(
                Protected(folder.at(name), f"even absent: with no [tool.pytest] table, {why}")
            )
    if folder.has_file("noxfile.py"):
        protected.append(
            Protected(folder.at("noxfile.py"), "found noxfile.py: nox sessions run the tests")
        )
    return protected


def node_layout(folder: Folder) -> Layout | None:
    if "package.json" not in folder.listing.files | folder.listing.links:
        return None
    package = _package_json(folder)
    runner = _node_runner(folder, package)
    notes: list[str] = []
    if runner == "jest":
        verify = JEST_VERIFY
        if not _depends_on(package, "jest-junit"):
            notes.append(
                f"add jest-junit to the devDependencies of {folder.shown('package.json')}: "
                "it is the reporter that writes the JUnit report"
            )
    elif runner == "vitest":
        verify = VITEST_VERIFY
    else:
        verify = NPM_VERIFY
        notes.append(
            f"no jest or vitest found in {folder.shown('package.json')}: `npm test` is a "
            "placeholder; make it write a JUnit report to $JIDOKA_TEST_REPORT, or Jidoka has "
            "no report to compare"
        )
    notes.append(
        "verify runs in a fresh checkout, without node_modules: install first (for example "
        "`npm ci && ...`, which needs the network or a package cache in the sandbox)"
    )
    return Layout(
        kind="node",
        folder=folder.relative,
        runner=runner,
        verify=folder.command(verify),
        test_report=DEFAULT_REPORT,
        protected=tuple(_node_protected(folder, runner)),
        notes=tuple(notes),
    )


def _package_json(folder: Folder) -> dict[str, Any] | None:
    text = folder.read("package.json")
    if text is None:
        return None
    try:
        package = json.loads(text)
    except ValueError as error:
        folder.notes.append(f"{folder.shown('package.json')} does not parse as JSON ({error})")
        return None
    if not isinstance(package, dict):
        folder.notes.append(f"{folder.shown('package.json')} is not a JSON object")
        return None
    return package  # pyright: ignore[reportUnknownVariableType]


def _depends_on(package: dict[str, Any] | None, name: str) -> bool:
    return any(name in _table(package, key) for key in ("devDependencies", "dependencies"))


def _node_runner(folder: Folder, package: dict[str, Any] | None) -> str | None:
    scripts = " ".join(str(v) for v in _table(package, "scripts").values())
    test_script = str(_table(package, "scripts").get("test", ""))
    for runner in ("vitest", "jest"):
        if re.search(rf"\b{runner}\b", test_script):
            return runner
    for runner in ("vitest", "jest"):
        if (
            _depends_on(package, runner)
            or re.search(rf"\b{runner}\b", scripts)
            or folder.files_like(f"{runner}.config.", CONFIG_SUFFIXES)
        ):
            return runner
    if package is not None and "jest" in package:
        return "jest"
    return None


def _node_protected(folder: Folder, runner: str | None) -> list[Protected]:
    protected = [
        Protected(
            folder.at("package.json"),
            f"found {folder.shown('package.json')}: its scripts, runner settings and "
            "dependency versions decide what runs",
        )
    ]
    for name in NODE_LOCKFILES:
        if folder.has_file(name):
            protected.append(
                Protected(
                    folder.at(name),
                    f"found {folder.shown(name)}: it pins the test runner and every dependency",
                )
            )
    configs = folder.files_like("jest.config.", CONFIG_SUFFIXES) + folder.files_like(
        "jest.setup.", CONFIG_SUFFIXES
    )
    configs += folder.files_like("vitest.config.", CONFIG_SUFFIXES) + folder.files_like(
        "vitest.workspace.", CONFIG_SUFFIXES
    )
    if runner == "vitest":
        configs += folder.files_like("vite.config.", CONFIG_SUFFIXES)
    for name in configs:
        protected.append(
            Protected(
                folder.at(name),
                f"found {folder.shown(name)}: it decides which tests run and how",
            )
        )
    for name in ("test", "tests"):
        if folder.has_dir(name):
            protected.append(
                Protected(folder.at(f"{name}/**"), f"found {folder.shown(name)}/: the tests")
            )
    protected += [
        Protected(folder.anywhere("**/__tests__/**"), "jest and vitest collect __tests__ folders"),
        Protected(folder.anywhere("**/*.test.*"), "test files by the jest/vitest naming rule"),
        Protected(folder.anywhere("**/*.spec.*"), "test files by the jest/vitest naming rule"),
    ]
    return protected


def go_layout(folder: Folder) -> Layout | None:
    if not folder.has_file("go.mod"):
        return None
    protected = [
        Protected(folder.anywhere("**/*_test.go"), "go test runs the *_test.go files"),
        Protected(
            folder.at("go.mod"), f"found {folder.shown('go.mod')}: the module and its Go version"
        ),
    ]
    if folder.has_file("go.sum"):
        protected.append(
            Protected(folder.at("go.sum"), f"found {folder.shown('go.sum')}: dependency checksums")
        )
    testdata = _find_testdata(folder)
    if testdata:
        protected.append(
            Protected(
                folder.anywhere("**/testdata/**"),
                f"found {testdata}/: the fixtures the tests compare against",
            )
        )
    notes = (
        "gotestsum must be on the PATH inside the sandbox (go install "
        "gotest.tools/gotestsum@latest), and the Go module cache reachable or the network on",
    )
    return Layout(
        kind="go",
        folder=folder.relative,
        runner="gotestsum",
        verify=folder.command(GO_VERIFY),
        test_report=DEFAULT_REPORT,
        protected=tuple(protected),
        notes=notes,
    )


def _find_testdata(folder: Folder) -> str | None:
    if folder.has_dir("testdata"):
        return folder.shown("testdata")
    for name in sorted(folder.listing.dirs)[:MAX_SUBFOLDERS]:
        if name.startswith(".") or not _SAFE_NAME.match(name):
            continue
        if is_real_dir(folder.root, f"{folder.shown(name)}/testdata"):
            return folder.shown(f"{name}/testdata")
    return None


def rust_layout(folder: Folder) -> Layout | None:
    if not folder.has_file("Cargo.toml"):
        return None
    cargo = folder.read_toml("Cargo.toml")
    protected: list[Protected] = []
    if folder.has_dir("tests"):
        protected.append(
            Protected(
                folder.at("tests/**"),
                f"found {folder.shown('tests')}/: the integration tests verify runs",
            )
        )
    protected += _workspace_tests(folder, cargo)
    protected.append(
        Protected(
            folder.at("Cargo.toml"),
            f"found {folder.shown('Cargo.toml')}: features, profiles and test targets",
        )
    )
    if folder.has_file("Cargo.lock"):
        protected.append(
            Protected(
                folder.at("Cargo.lock"), f"found {folder.shown('Cargo.lock')}: pinned dependencies"
            )
        )
    report, nextest_notes, nextest_found = _nextest_report(folder)
    protected.append(
        Protected(
            folder.at(".config/nextest.toml"),
            f"{'found' if nextest_found else 'to create:'} {folder.shown('.config/nextest.toml')}:"
            " the ci profile verify runs and where its JUnit report goes",
        )
    )
    if folder.has_dir("benches"):
        protected.append(
            Protected(folder.at("benches/**"), f"found {folder.shown('benches')}/: benchmarks")
        )
    notes = [
        *nextest_notes,
        "cargo-nextest must be on the PATH inside the sandbox (cargo install cargo-nextest)",
        "unit tests inside src/ (#[cfg(test)]) cannot be protected by path; the report "
        "comparison still notices a test that disappears",
    ]
    return Layout(
        kind="rust",
        folder=folder.relative,
        runner="nextest",
        verify=folder.command(RUST_VERIFY),
        test_report=folder.at(report),
        protected=tuple(protected),
        notes=tuple(notes),
    )


def _workspace_tests(folder: Folder, cargo: dict[str, Any] | None) -> list[Protected]:
    members = _table(cargo, "workspace").get("members", [])
    if not isinstance(members, list):
        return []
    protected: list[Protected] = []
    for member in members:  # pyright: ignore[reportUnknownVariableType]
        if isinstance(member, str) and _SAFE_GLOB.match(member) and ".." not in member:
            protected.append(
                Protected(
                    folder.at(f"{member.strip('/')}/tests/**"),
                    f"workspace member {member}: its integration tests",
                )
            )
    return protected


def _nextest_report(folder: Folder) -> tuple[str, list[str], bool]:
    """Where nextest's ci profile writes its JUnit report, what the user must add, and whether
    ``.config/nextest.toml`` exists."""
    name = ".config/nextest.toml"
    text = read_text(folder.root, folder.shown(name))
    default = f"{NEXTEST_STORE}/junit.xml"
    if text is None:
        return default, [_nextest_missing(folder, "does not exist yet; create it with")], False
    try:
        path = _table(tomllib.loads(text), "profile", "ci", "junit").get("path")
    except tomllib.TOMLDecodeError as error:
        return default, [f"{folder.shown(name)} does not parse as TOML ({error})"], True
    if isinstance(path, str) and _SAFE_GLOB.match(path) and "*" not in path and ".." not in path:
        return f"{NEXTEST_STORE}/{path.lstrip('/')}", [], True
    return default, [_nextest_missing(folder, "must set")], True


def _nextest_missing(folder: Folder, what: str) -> str:
    return (
        f'{folder.shown(".config/nextest.toml")} {what} [profile.ci.junit] path = "junit.xml": '
        f"nextest writes the report under {folder.shown(NEXTEST_STORE)}/ (the ci profile's "
        "store), not to $JIDOKA_TEST_REPORT, so test_report points there"
    )


DETECTORS: tuple[Callable[[Folder], Layout | None], ...] = (
    python_layout,
    node_layout,
    go_layout,
    rust_layout,
)


# -- CI and lint settings ----------------------------------------------------------------------


def ci_protected(top: Folder) -> list[Protected]:
    protected: list[Protected] = []
    for relative, what in CI_FOLDERS.items():
        if is_real_dir(top.root, relative):
            protected.append(
                Protected(
                    f"{relative}/**",
                    f"found {relative}/: {what}; an agent could drop the checks CI runs",
                )
            )
    for name, what in CI_FILES.items():
        if top.has_file(name):
            protected.append(
                Protected(name, f"found {name}: {what}; an agent could drop the checks it runs")
            )
    return protected


def lint_protected(folder: Folder) -> list[Protected]:
    protected: list[Protected] = []
    for name, what in LINT_FILES.items():
        if folder.has_file(name):
            protected.append(
                Protected(
                    folder.at(name),
                    f"found {folder.shown(name)}: {what}; loosening them hides a defect",
                )
            )
    for prefix, what in LINT_PREFIXES.items():
        for name in folder.files_like(prefix):
            protected.append(
                Protected(
                    folder.at(name),
                    f"found {folder.shown(name)}: {what}; loosening them hides a defect",
                )
            )
    return protected


# -- the proposal ------------------------------------------------------------------------------


def propose(path: Path) -> Proposal:
    """Look at ``path`` (a folder) and propose verify, the report and the protected paths."""
    root = path.resolve()
    top = Folder(root, ".", list_folder(root))
    layouts = [layout for detect in DETECTORS if (layout := detect(top))]
    folders = [top]
    top_kinds = {layout.kind for layout in layouts}
    for sub in _subfolders(top):
        found = [layout for detect in DETECTORS if (layout := detect(sub))]
        found = [layout for layout in found if layout.kind not in top_kinds]
        if found:
            layouts += found
            folders.append(sub)
    protected = [p for layout in layouts for p in layout.protected]
    protected += ci_protected(top)
    for folder in folders:
        protected += lint_protected(folder)
    notes = _notes(top, layouts, folders)
    if not layouts:
        protected = [
            *(
                Protected(f"{name}/**", f"found {name}/: tests, whatever runs them")
                for name in ("tests", "test")
                if top.has_dir(name)
            ),
            *protected,
        ]
    first = layouts[0] if layouts else None
    return Proposal(
        path=str(root),
        layouts=tuple(layouts),
        verify=first.verify if first else GENERIC_VERIFY,
        test_report=first.test_report if first else DEFAULT_REPORT,
        protected=tuple(_unique(protected)),
        notes=tuple(notes),
    )


def _subfolders(top: Folder) -> list[Folder]:
    names = [
        name
        for name in sorted(top.listing.dirs)
        if not name.startswith(".") and name not in _SKIPPED_SUBFOLDERS and _SAFE_NAME.match(name)
    ]
    return [Folder(top.root, name, list_folder(top.root / name)) for name in names[:MAX_SUBFOLDERS]]


def _notes(top: Folder, layouts: list[Layout], folders: list[Folder]) -> list[str]:
    notes: list[str] = []
    if not layouts:
        notes.append(
            "no Python, Node, Go or Rust project found at the top or one folder down: the "
            "proposed verify is a placeholder that fails until you replace it"
        )
    for layout in layouts:
        notes += layout.notes
    for layout in layouts[1:]:
        notes.append(
            f"{layout.label} is not in verify: Jidoka compares one JUnit report, so its tests "
            "only count if you chain them into verify and merge their report"
        )
    if top.has_file("Makefile"):
        notes.append(
            "Makefile found but not proposed (verify does not use it); protect it too if "
            "verify becomes a make target"
        )
    if top.listing.truncated:
        notes.append(f"the folder has more than {MAX_ENTRIES} entries: only the first were read")
    for folder in folders:
        notes += folder.notes
    return list(dict.fromkeys(notes))


def _unique(protected: Iterable[Protected]) -> list[Protected]:
    seen: dict[str, Protected] = {}
    for item in protected:
        seen.setdefault(item.glob, item)
    return list(seen.values())


# -- printing ----------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """A YAML single-quoted scalar: every character literal, ``'`` doubled."""
    return "'" + value.replace("'", "''") + "'"


WIDTH = 100
"""Comment lines are wrapped to this many columns (a command is never wrapped)."""


def _comment(text: str, indent: str = "", bullet: str = "") -> list[str]:
    """Comment lines, wrapped; control characters (a newline in a folder's name) become ``?``."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    width = WIDTH - len(indent) - 2 - len(bullet)
    parts = textwrap.wrap(clean, width, break_long_words=False, break_on_hyphens=False) or [""]
    hang = " " * len(bullet)
    return [f"{indent}# {bullet if i == 0 else hang}{part}" for i, part in enumerate(parts)]


def render_yaml(proposal: Proposal) -> str:
    """The fragment to paste into WORKFLOW.md's front matter, with a comment for each choice."""
    lines = _yaml_header(proposal)
    lines += ["hooks:", *_verify_comments(proposal), f"  verify: {_quote(proposal.verify)}"]
    lines.append("judge:")
    lines += _comment(
        "relative to the checkout verify runs in; verify gets it as an absolute "
        "path in $JIDOKA_TEST_REPORT",
        "  ",
    )
    lines.append(f"  test_report: {_quote(proposal.test_report)}")
    if not proposal.protected:
        lines.append("  protected_paths: []")
    else:
        lines.append("  protected_paths:")
        for item in proposal.protected:
            lines += [*_comment(item.reason, "    "), f"    - {_quote(item.glob)}"]
    if proposal.notes:
        lines.append("# notes:")
        for note in proposal.notes:
            lines += _comment(note, bullet="- ")
    return "\n".join(lines) + "\n"


def _verify_comments(proposal: Proposal) -> list[str]:
    if not proposal.layouts:
        return _comment(
            "a placeholder that fails until replaced: run the tests, write JUnit XML "
            "to $JIDOKA_TEST_REPORT",
            "  ",
        )
    first, *others = proposal.layouts
    lines = _comment(f"{first.label}: runs the tests and writes the JUnit report", "  ")
    for other in others:
        lines += _comment(f"also detected: {other.label}; its own verify would be:", "  ")
        lines.append(f"  #   {''.join(c if c.isprintable() else '?' for c in other.verify)}")
    return lines


def _yaml_header(proposal: Proposal) -> list[str]:
    if not proposal.detected:
        return [
            *_comment(f"jidoka {' '.join(COMMAND)}: no known project layout in {proposal.path}"),
            *_comment("a generic proposal (nothing was written): edit it before use"),
        ]
    return [
        *_comment(
            f"jidoka {' '.join(COMMAND)}: a proposal for {proposal.path} (nothing was written)"
        ),
        *_comment("detected: " + ", ".join(layout.label for layout in proposal.layouts)),
        *_comment(
            "paste into WORKFLOW.md's front matter, merged with any hooks: and judge: "
            "already there; then run jidoka check"
        ),
    ]


def render_json(proposal: Proposal) -> str:
    return json.dumps(proposal.to_json())


# -- the command -------------------------------------------------------------------------------


def add_parser(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        COMMAND[-1],
        help="propose hooks.verify and judge: for a repository",
        description="Look at a project repository and propose (print, never write) hooks.verify, "
        "judge.test_report and judge.protected_paths for its WORKFLOW.md. Exit 0 when a "
        "layout was recognised, 1 when not (a generic proposal is printed), 2 when PATH is "
        "not a folder.",
    )
    parser.add_argument("path", nargs="?", default=".", help="the project folder (default: .)")
    parser.add_argument("--json", action="store_true", help="print the proposal as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_dir():
        problem = "does not exist" if not path.exists() else "is not a folder"
        raise CliError(f"{args.path} {problem}: pass the project repository's folder", exit_code=2)
    proposal = propose(path)
    if args.json:
        print(render_json(proposal))
    else:
        print(render_yaml(proposal), end="")
    return 0 if proposal.detected else 1
