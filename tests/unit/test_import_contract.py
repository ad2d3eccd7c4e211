"""The import contract in pyproject.toml holds (also run by `make lint`): the arrows between packages point down."""

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT


def test_import_contract_is_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
