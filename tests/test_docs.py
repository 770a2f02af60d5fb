"""The docs point at code that exists: every test named in docs/derivation.md is a test in
tests/ (or one of its folders), and every `minipg/...py` or `tests/...py` file it names exists."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_test_named_in_the_derivation_exists():
    text = (ROOT / "docs" / "derivation.md").read_text()
    named = set(re.findall(r"\b(test_[a-z0-9_]+)", text))
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), re.M))
    named_files = {name for name in named if list((ROOT / "tests").rglob(f"{name}.py"))}
    missing = sorted(named - defined - named_files)
    assert len(named) > 20
    assert not missing, f"docs/derivation.md names tests that do not exist: {missing}"


def test_every_source_file_named_in_the_derivation_exists():
    text = (ROOT / "docs" / "derivation.md").read_text()
    paths = set(re.findall(r"`((?:minipg|examples|benchmarks|tests)/[A-Za-z0-9_/]+\.py)", text))
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing
