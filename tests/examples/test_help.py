"""Every example's --help describes it with the whole first paragraph of its docstring, not a
first line cut off mid-sentence."""
import contextlib
import io
import pathlib
import runpy
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_help_gives_the_whole_first_paragraph(path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        runpy.run_path(str(path), run_name="__main__")
    assert stop.value.code == 0
    first_paragraph = path.read_text().split('"""')[1].split("\n\n")[0]
    assert first_paragraph.rstrip()[-1] in ".:?", f"{path.name}: its first paragraph is cut"
    assert " ".join(first_paragraph.split()) in " ".join(out.getvalue().split())
