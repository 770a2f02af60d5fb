"""The README's `python -c` snippets run as pasted and print what the README says they print
(the comment lines right after each snippet)."""
import pathlib
import re
import subprocess
import sys

import pytest

README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
SNIPPETS = re.findall(r'```bash\npython -c "\n(.*?)"[^\n]*\n((?:# [^\n]*\n)+)```', README, re.S)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("code, expected", SNIPPETS,
                         ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_a_readme_snippet_prints_what_the_readme_shows(code, expected, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = [line[2:] for line in expected.splitlines()]
    assert done.stdout.splitlines() == shown
