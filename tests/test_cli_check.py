"""`crowe-compile --check` end to end, through the installed command."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CLI = str(Path(sys.executable).parent / "crowe-compile")
POLICIES = sorted((ROOT / "policies").glob("*.policy"))
GOLDEN = ROOT / "tests" / "golden"
BROKEN = GOLDEN / "e0401_unknown_name.policy"
WARNS = GOLDEN / "w0101_unused_feature.policy"
KEYS = {"code", "severity", "message", "file", "line", "column", "end_line", "end_column",
        "help", "labels"}


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def expected(path: Path) -> list[tuple[str, int, int]]:
    found = re.findall(r"^# expect: ([EW]\d{4}) (\d+):(\d+)$", path.read_text("utf-8"), re.M)
    return sorted((code, int(line), int(col)) for code, line, col in found)


def no_traceback(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stdout + out.stderr


def test_examples_are_clean_and_print_one_summary_line():
    out = run("--check", *map(str, POLICIES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == f"checked {len(POLICIES)} files: ok (0 errors, 0 warnings)\n"
    assert out.stderr == ""


def test_broken_file_as_json():
    out = run("--check", "--format", "json", str(BROKEN))
    assert out.returncode == 1
    diags = json.loads(out.stdout)  # the whole of stdout is one JSON document
    assert diags and all(set(d) == KEYS for d in diags)
    assert sorted((d["code"], d["line"], d["column"]) for d in diags) == expected(BROKEN)
    d = diags[0]
    assert d["severity"] == "error" and d["file"] == str(BROKEN)
    assert (d["end_line"], d["end_column"]) >= (d["line"], d["column"])
    assert d["help"] == "did you mean `close`?"
    assert out.stderr == ""


def test_broken_file_as_text():
    out = run("--check", str(BROKEN.relative_to(ROOT)))
    assert out.returncode == 1
    line, col = expected(BROKEN)[0][1:]
    assert f"error[E0401]: unknown name `clsoe`\n  --> tests/golden/{BROKEN.name}:{line}:{col}" \
        in out.stdout
    assert "= help: did you mean `close`?" in out.stdout
    assert out.stdout.endswith("checked 1 file: 1 file with errors (1 error, 0 warnings)\n")


def test_labels_in_json():
    path = GOLDEN / "e0312_net_above_gross.policy"
    out = run("--check", "--format", "json", str(path))
    [d] = json.loads(out.stdout)
    [label] = d["labels"]
    assert label["message"] == "gross limit set here"
    assert set(label) == {"message", "file", "line", "column", "end_line", "end_column"}


def test_warnings_alone_exit_zero():
    out = run("--check", str(WARNS))
    assert out.returncode == 0
    assert "warning[W0101]" in out.stdout
    assert out.stdout.endswith("checked 1 file: ok (0 errors, 1 warning)\n")


def test_several_files_good_and_bad():
    files = [str(POLICIES[0]), str(BROKEN), str(POLICIES[1]), str(WARNS)]
    out = run("--check", "--format", "json", *files)
    assert out.returncode == 1
    diags = json.loads(out.stdout)
    assert {d["file"] for d in diags} == {str(BROKEN), str(WARNS)}
    assert sorted(d["code"] for d in diags) == ["E0401", "W0101"]
    text = run("--check", *files)
    assert text.returncode == 1
    assert text.stdout.splitlines()[-1] == \
        "checked 4 files: 1 file with errors (1 error, 1 warning)"


def test_missing_file_is_a_usage_error():
    out = run("--check", "no/such/file.policy")
    assert out.returncode == 2
    assert out.stderr.startswith("error:") and "does not exist" in out.stderr
    no_traceback(out)


def test_missing_file_among_good_ones_still_checks_the_others():
    out = run("--check", "--format", "json", str(POLICIES[0]), "missing.policy")
    assert out.returncode == 2
    assert json.loads(out.stdout) == []
    assert "error: `missing.policy` does not exist" in out.stderr
    no_traceback(out)


def test_directory_is_a_usage_error():
    out = run("--check", "policies")
    assert out.returncode == 2
    assert out.stderr.startswith("error:") and "directory" in out.stderr
    no_traceback(out)


@pytest.mark.parametrize("args", [(), ("--check",), ("--check", "--format", "yaml", "x"),
                                  ("--bogus",)])
def test_usage_errors(args):
    out = run(*args)
    assert out.returncode == 2
    assert out.stdout == "" and "Error" in out.stderr
    no_traceback(out)


def test_unreadable_bytes_are_diagnostics_not_usage_errors(tmp_path: Path):
    bad = tmp_path / "binary.policy"
    bad.write_bytes(b"\x00\xff" * 64)
    out = run("--check", "--format", "json", str(bad))
    assert out.returncode == 1
    [d] = json.loads(out.stdout)
    assert d["code"] in ("E0003", "E0004")
    no_traceback(out)


def test_checker_does_not_import_jax_or_cvxpy():
    code = ("import sys; from crowe.dsl import cli; from crowe.dsl.policy import check_path; "
            f"check_path({str(POLICIES[0])!r}); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'cvxpy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _with_feature(tmp_path: Path, expression: str) -> Path:
    """cs_mom_v1 with one more feature, `big`, that its forecast uses."""
    text = (ROOT / "policies" / "cs_mom_v1.policy").read_text("utf-8")
    text = text.replace("features:\n", f"features:\n  big: {expression}\n", 1)
    text = text.replace("  mu:    mu_5d\n", "  mu:    mu_5d + 0 * big\n", 1)
    assert "0 * big" in text
    path = tmp_path / "flat.policy"
    path.write_text(text, "utf-8")
    return path


def test_the_longest_flat_sum_that_fits_checks_clean(tmp_path: Path):
    from crowe.dsl.expr import MAX_LENGTH
    terms = (MAX_LENGTH - 1) // 3
    out = run("--check", str(_with_feature(tmp_path, "+".join(["r1"] * terms))))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == "checked 1 file: ok (0 errors, 0 warnings)\n"


def test_deep_nesting_in_a_policy_is_one_diagnostic(tmp_path: Path):
    from crowe.dsl.expr import MAX_DEPTH
    k = MAX_DEPTH + 1
    out = run("--check", "--format", "json",
              str(_with_feature(tmp_path, "r1 + (" * k + "r1" + ")" * k)))
    assert out.returncode == 1
    assert [d["code"] for d in json.loads(out.stdout)] == ["E0203"]
    no_traceback(out)
