"""Commands that need no compiled program start without importing JAX (`crowe --help`,
`crowe trust`, `crowe keygen`, `crowe journal verify`, `crowe paper status|kill|resume`,
`crowe fmt`, `crowe schema`), and a user error raised by a module is still recognised as one."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

SCRIPT = r"""
import json, sys
from click.testing import CliRunner
from crowe.runtime.cli import main
tmp = sys.argv[1]
policy = sys.argv[2]
runs = [["--help"], ["keygen", "--out", f"{tmp}/k"],
        ["trust", "add", f"{tmp}/k.pub", "--role", "journal", "--trust", f"{tmp}/t"],
        ["trust", "list", "--trust", f"{tmp}/t"],
        ["journal", "verify", tmp, "--trust", f"{tmp}/t"],
        ["paper", "kill", "--state-dir", tmp], ["paper", "resume", "--state-dir", tmp],
        ["paper", "status", "--state-dir", tmp], ["fmt", "--check", policy], ["schema"]]
codes = [CliRunner().invoke(main, args).exit_code for args in runs]
print(json.dumps({"codes": codes, "jax": "jax" in sys.modules}))
"""


def test_commands_without_a_compiled_program_do_not_import_jax(tmp_path: Path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path),
                          str(ROOT / "policies" / "cs_mom_v1.policy")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.splitlines()[-1])
    # --help, keygen, trust add/list: 0; journal verify: 1 (no journal); kill/resume: 0;
    # status: 2 (no bar processed yet, a user error); fmt --check: 0 or 1 (ran); schema: 0
    codes = got["codes"]
    assert codes[:8] == [0, 0, 0, 0, 1, 0, 0, 2] and codes[8] in (0, 1) and codes[9] == 0
    assert got["jax"] is False
