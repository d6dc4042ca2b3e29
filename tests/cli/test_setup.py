"""``jidoka setup`` on real project folders: each common layout gets a verify command that writes
a JUnit report and the protected paths that guard its judge (the tests, the runner's settings,
CI); the YAML it prints parses into a ``judge:`` section WORKFLOW.md accepts; ``--json`` is one
document; nothing outside the folder is read through a symbolic link, and a broken or huge file
is a note, never a crash."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import main
from cli.setup import COMMAND, GENERIC_VERIFY, MAX_READ_BYTES
from jidoka.config import JudgeConfig
from jidoka.paths import first_match
from tests.support.paths import JIDOKA

REPORT = ".jidoka-reports/junit.xml"


def build(root: Path, files: dict[str, str]) -> Path:
    """A project folder: each key a path relative to ``root`` (a trailing ``/`` is a folder)."""
    for relative, text in files.items():
        target = root / relative
        if relative.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def propose_yaml(capsys: pytest.CaptureFixture[str], folder: Path) -> tuple[int, dict[str, Any]]:
    """Run the command as the CLI does and parse what it printed as WORKFLOW.md front matter."""
    code = main([*COMMAND, str(folder)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    front = yaml.safe_load(out)
    assert set(front) == {"hooks", "judge"}
    assert set(front["hooks"]) == {"verify"}
    assert set(front["judge"]) == {"protected_paths", "test_report"}
    JudgeConfig.model_validate(front["judge"])
    return code, front


def propose_json(capfd: pytest.CaptureFixture[str], folder: Path) -> tuple[int, dict[str, Any]]:
    """``--json`` writes its document to the real stdout (file descriptor 1), hence capfd."""
    code = main([*COMMAND, str(folder), "--json"])
    out, _ = capfd.readouterr()
    document = json.loads(out)
    assert set(document) >= {"path", "layouts", "verify", "judge", "notes"}
    JudgeConfig.model_validate(document["judge"])
    return code, document


def protected(front: dict[str, Any]) -> list[str]:
    return front["judge"]["protected_paths"]


def test_python(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\n[tool.pytest.ini_options]\naddopts = "-q"\n',
            "tox.ini": "[tox]\n",
            "tests/test_a.py": "def test_a():\n    pass\n",
            "tests/conftest.py": "",
            ".github/workflows/ci.yml": "on: push\n",
            ".pre-commit-config.yaml": "repos: []\n",
            "ruff.toml": "line-length = 100\n",
            "Makefile": "test:\n\tpytest\n",
            "src/x/__init__.py": "",
        },
    )
    code, front = propose_yaml(capsys, tmp_path)

    assert code == 0
    assert front["hooks"]["verify"] == (
        'python -m pytest -q -p no:cacheprovider --junitxml="$JIDOKA_TEST_REPORT"'
    )
    assert front["judge"]["test_report"] == REPORT
    assert protected(front) == [
        "tests/**",
        "conftest.py",
        "pyproject.toml",
        "pytest.ini",  # absent, but a new one would outrank pyproject.toml
        ".pytest.ini",
        "tox.ini",
        ".github/workflows/**",
        ".pre-commit-config.yaml",
        "ruff.toml",
    ]
    globs = protected(front)
    assert first_match("tests/unit/test_b.py", globs) == "tests/**"
    assert first_match("src/x/conftest.py", globs) == "conftest.py"
    assert first_match("src/x/core.py", globs) is None


def test_python_comments_say_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build(tmp_path, {"pyproject.toml": "[tool.pytest.ini_options]\n", "tests/test_a.py": ""})
    main([*COMMAND, str(tmp_path)])
    out = capsys.readouterr().out

    assert "# found pyproject.toml: its [tool.pytest] settings decide what" in out
    assert "# found tests/: the tests verify runs" in out
    assert "nothing was written" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml", "tests"]


def test_python_without_tests_proposes_no_test_globs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(tmp_path, {"requirements.txt": "requests\n", "setup.cfg": "[metadata]\n"})
    code, front = propose_yaml(capsys, tmp_path)

    assert code == 0
    # No [tool.pytest] table: a new pytest.ini, setup.cfg or tox.ini would decide what runs.
    assert protected(front) == ["pytest.ini", ".pytest.ini", "setup.cfg", "tox.ini"]


def test_node_jest(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    package = {"scripts": {"test": "jest"}, "devDependencies": {"jest": "^29", "jest-junit": "^16"}}
    build(
        tmp_path,
        {
            "package.json": json.dumps(package),
            "package-lock.json": "{}",
            "jest.config.js": "module.exports = {};\n",
            "test/a.test.js": "",
            ".eslintrc.json": "{}",
        },
    )
    code, document = propose_json(capfd, tmp_path)

    assert code == 0
    assert [(layout["kind"], layout["runner"]) for layout in document["layouts"]] == [
        ("node", "jest")
    ]
    assert document["verify"] == (
        'JEST_JUNIT_OUTPUT_FILE="$JIDOKA_TEST_REPORT" '
        "npx jest --ci --reporters=default --reporters=jest-junit"
    )
    assert document["judge"]["test_report"] == REPORT
    assert document["judge"]["protected_paths"] == [
        "package.json",
        "package-lock.json",
        "jest.config.js",
        "test/**",
        "**/__tests__/**",
        "**/*.test.*",
        "**/*.spec.*",
        ".eslintrc.json",
    ]
    assert not [note for note in document["notes"] if "jest-junit" in note]
    globs = document["judge"]["protected_paths"]
    assert first_match("src/deep/__tests__/x.js", globs) == "**/__tests__/**"
    assert first_match("src/button.spec.tsx", globs) == "**/*.spec.*"


def test_node_jest_without_its_junit_reporter_is_noted(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(tmp_path, {"package.json": json.dumps({"devDependencies": {"jest": "^29"}})})
    _, document = propose_json(capfd, tmp_path)

    assert document["layouts"][0]["runner"] == "jest"
    assert any("jest-junit" in note for note in document["notes"])


def test_node_vitest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    package = {"scripts": {"test": "vitest"}, "devDependencies": {"vitest": "^1"}}
    build(
        tmp_path,
        {
            "package.json": json.dumps(package),
            "pnpm-lock.yaml": "",
            "vitest.config.ts": "",
            "tsconfig.json": "{}",
            "eslint.config.js": "",
            ".gitlab-ci.yml": "",
        },
    )
    code, front = propose_yaml(capsys, tmp_path)

    assert code == 0
    assert front["hooks"]["verify"] == (
        'npx vitest run --reporter=junit --outputFile="$JIDOKA_TEST_REPORT"'
    )
    assert protected(front) == [
        "package.json",
        "pnpm-lock.yaml",
        "vitest.config.ts",
        "**/__tests__/**",
        "**/*.test.*",
        "**/*.spec.*",
        ".gitlab-ci.yml",
        "tsconfig.json",
        "eslint.config.js",
    ]


def test_go(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "go.mod": "module example.com/x\n\ngo 1.22\n",
            "go.sum": "",
            "parse/parse_test.go": "package parse\n",
            "parse/testdata/": "",
            ".golangci.yml": "",
        },
    )
    code, document = propose_json(capfd, tmp_path)

    assert code == 0
    assert document["verify"] == 'gotestsum --junitfile "$JIDOKA_TEST_REPORT" ./...'
    assert document["judge"]["protected_paths"] == [
        "**/*_test.go",
        "go.mod",
        "go.sum",
        "**/testdata/**",
        ".golangci.yml",
    ]
    globs = document["judge"]["protected_paths"]
    assert first_match("parse/parse_test.go", globs) == "**/*_test.go"
    assert first_match("parse/testdata/golden.txt", globs) == "**/testdata/**"


def test_rust_needs_a_nextest_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "Cargo.toml": '[package]\nname = "x"\n',
            "Cargo.lock": "",
            "tests/it.rs": "",
            "benches/b.rs": "",
            "src/lib.rs": "",
        },
    )
    code, front = propose_yaml(capsys, tmp_path)

    assert code == 0
    assert front["hooks"]["verify"] == "cargo nextest run --profile ci"
    assert front["judge"]["test_report"] == "target/nextest/ci/junit.xml"
    assert protected(front) == [
        "tests/**",
        "Cargo.toml",
        "Cargo.lock",
        ".config/nextest.toml",
        "benches/**",
    ]


def test_rust_note_names_the_nextest_setting(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(tmp_path, {"Cargo.toml": '[workspace]\nmembers = ["crates/*"]\n'})
    _, document = propose_json(capfd, tmp_path)

    assert any('[profile.ci.junit] path = "junit.xml"' in note for note in document["notes"])
    assert "crates/*/tests/**" in document["judge"]["protected_paths"]
    assert first_match("crates/core/tests/a.rs", document["judge"]["protected_paths"])


def test_rust_reads_the_report_path_from_nextest_toml(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(
        tmp_path,
        {
            "Cargo.toml": '[package]\nname = "x"\n',
            ".config/nextest.toml": '[profile.ci.junit]\npath = "report.xml"\n',
        },
    )
    _, document = propose_json(capfd, tmp_path)

    assert document["judge"]["test_report"] == "target/nextest/ci/report.xml"
    assert not [note for note in document["notes"] if "profile.ci.junit" in note]


def test_mixed_backend_and_frontend(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "backend/pyproject.toml": "[project]\n",
            "backend/tests/test_api.py": "",
            "frontend/package.json": json.dumps({"devDependencies": {"vitest": "^1"}}),
            "frontend/package-lock.json": "{}",
            "frontend/tsconfig.json": "{}",
            "docs/requirements.txt": "sphinx\n",
            "node_modules/left-pad/package.json": "{}",
            ".github/workflows/ci.yml": "",
        },
    )
    code, front = propose_yaml(capsys, tmp_path)
    main([*COMMAND, str(tmp_path)])
    out = capsys.readouterr().out

    assert code == 0
    assert front["hooks"]["verify"] == (
        'cd backend && python -m pytest -q -p no:cacheprovider --junitxml="$JIDOKA_TEST_REPORT"'
    )
    assert front["judge"]["test_report"] == REPORT
    assert protected(front) == [
        "backend/tests/**",
        "backend/**/conftest.py",
        "backend/pyproject.toml",
        "backend/pytest.ini",
        "backend/.pytest.ini",
        "backend/setup.cfg",
        "backend/tox.ini",
        "frontend/package.json",
        "frontend/package-lock.json",
        "frontend/**/__tests__/**",
        "frontend/**/*.test.*",
        "frontend/**/*.spec.*",
        ".github/workflows/**",
        "frontend/tsconfig.json",
    ]
    assert "# detected: python (pytest) in backend/, node (vitest) in frontend/" in out
    assert "also detected: node (vitest) in frontend/" in out
    assert (
        'cd frontend && npx vitest run --reporter=junit --outputFile="$JIDOKA_TEST_REPORT"' in out
    )
    globs = protected(front)
    assert first_match("frontend/src/app.test.ts", globs) == "frontend/**/*.test.*"
    assert first_match("backend/tests/conftest.py", globs) == "backend/tests/**"
    assert first_match("backend/app/conftest.py", globs) == "backend/**/conftest.py"


def test_top_level_wins_over_a_subfolder_of_the_same_kind(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(
        tmp_path,
        {
            "package.json": json.dumps({"devDependencies": {"jest": "^29"}}),
            "web/package.json": json.dumps({"devDependencies": {"vitest": "^1"}}),
            "api/go.mod": "module x\n",
        },
    )
    _, document = propose_json(capfd, tmp_path)

    assert [(x["kind"], x["folder"]) for x in document["layouts"]] == [
        ("node", "."),
        ("go", "api"),
    ]


@pytest.mark.parametrize("as_json", [False, True])
def test_nothing_detected(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, *, as_json: bool
) -> None:
    build(tmp_path, {"README.md": "hello\n", "tests/": "", ".circleci/config.yml": ""})
    if as_json:
        code, document = propose_json(capfd, tmp_path)
        verify, judge = document["verify"], document["judge"]
        assert document["layouts"] == []
        assert any("no Python, Node, Go or Rust project" in n for n in document["notes"])
    else:
        code = main([*COMMAND, str(tmp_path)])
        out = capfd.readouterr().out
        assert "# jidoka" in out and "no known project layout" in out
        front = yaml.safe_load(out)
        verify, judge = front["hooks"]["verify"], front["judge"]
        JudgeConfig.model_validate(judge)

    assert code == 1
    assert verify == GENERIC_VERIFY
    assert judge == {"protected_paths": ["tests/**", ".circleci/**"], "test_report": REPORT}


def test_an_empty_folder_proposes_an_empty_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, front = propose_yaml(capsys, tmp_path)

    assert code == 1
    assert protected(front) == []


@pytest.mark.parametrize("target", ["missing", "file.txt"])
def test_path_not_a_folder(capfd: pytest.CaptureFixture[str], tmp_path: Path, target: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    code = main([*COMMAND, str(tmp_path / target), "--json"])
    out, err = capfd.readouterr()

    assert code == 2
    assert out == ""
    assert err.startswith(f"jidoka: {tmp_path / target} ")
    assert "folder" in err and "Traceback" not in err


def test_a_broken_package_json_is_a_note(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build(tmp_path, {"package.json": '{"devDependencies": {"jest": '})
    code, document = propose_json(capfd, tmp_path)

    assert code == 0
    assert document["layouts"][0]["runner"] is None
    assert document["verify"] == "npm test"
    assert any("package.json does not parse as JSON" in note for note in document["notes"])
    assert "package.json" in document["judge"]["protected_paths"]


def test_a_package_json_that_is_not_an_object(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(tmp_path, {"package.json": "[1, 2]"})
    _, document = propose_json(capfd, tmp_path)

    assert any("not a JSON object" in note for note in document["notes"])


def test_links_out_of_the_folder_are_never_read(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outside = build(
        tmp_path / "outside",
        {
            "package.json": json.dumps({"devDependencies": {"vitest": "^1"}}),
            "project/go.mod": "module x\n",
            "config/nextest.toml": '[profile.ci.junit]\npath = "secret.xml"\n',
        },
    )
    repo = build(tmp_path / "repo", {"Cargo.toml": '[package]\nname = "x"\n'})
    (repo / "package.json").symlink_to(outside / "package.json")
    (repo / "linked").symlink_to(outside / "project")
    (repo / ".config").symlink_to(outside / "config")
    code, document = propose_json(capfd, repo)

    assert code == 0
    assert [(x["kind"], x["runner"]) for x in document["layouts"]] == [
        ("node", None),
        ("rust", "nextest"),
    ]
    assert any("package.json is a symbolic link: not read" in n for n in document["notes"])
    assert document["verify"] == "npm test"
    assert "secret" not in json.dumps(document)


def test_files_over_one_mib_are_not_read(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    padding = " " * MAX_READ_BYTES
    build(tmp_path, {"package.json": '{"devDependencies": {"vitest": "1"}}' + padding})
    _, document = propose_json(capfd, tmp_path)

    assert document["layouts"][0]["runner"] is None
    assert any("larger than 1 MiB" in note for note in document["notes"])


def test_a_folder_name_with_a_newline_cannot_break_the_yaml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(tmp_path, {"pyproject.toml": "", "tests/": "", "odd\nname: x/package.json": "{}"})
    code, front = propose_yaml(capsys, tmp_path)

    assert code == 0
    assert all("\n" not in glob for glob in protected(front))


def test_the_console_script(tmp_path: Path) -> None:
    build(tmp_path, {"go.mod": "module x\n", "main_test.go": "package main\n"})
    done = subprocess.run(
        [JIDOKA, *COMMAND, str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["path"] == str(tmp_path.resolve())
    assert document["layouts"] == [
        {
            "kind": "go",
            "folder": ".",
            "runner": "gotestsum",
            "verify": 'gotestsum --junitfile "$JIDOKA_TEST_REPORT" ./...',
            "test_report": REPORT,
        }
    ]
    assert "Traceback" not in done.stderr


def test_a_folder_of_modules_and_test_files_is_a_python_project(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    build(tmp_path, {"calc.py": "", "test_calc.py": "def test_a():\n    pass\n"})
    code, front = propose_yaml(capsys, tmp_path)
    assert code == 0
    assert first_match("test_calc.py", protected(front)) == "test_*.py"
    assert first_match("pytest.ini", protected(front)) == "pytest.ini"
