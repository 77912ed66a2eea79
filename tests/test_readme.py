"""The README's example policy checks clean: the documentation stays true to the language."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from crowe.dsl.policy import check_text

README = Path(__file__).parent.parent / "README.md"


def test_the_readme_policy_checks_clean():
    if not README.is_file():
        pytest.skip("README.md is not installed with the package")
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    policies = [b for b in blocks if b.startswith("policy:")]
    assert policies
    for text in policies:
        result = check_text(text, "README.md")
        assert result.ok and not result.diagnostics, [str(d) for d in result.diagnostics]
