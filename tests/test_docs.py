"""The docs point at code that exists.

docs/derivation.md cites tests in three forms, each inside backticks:

    `tests/exact/test_exact_is.py::test_name` or `test_exact_is.py::test_name`   a file and a test
    `::test_name`                                  a test of the file cited last before it
    `test_name`                                    a test of tests/exact/test_exact.py

(the rule the derivation states under its first table). Every cited pair must be a test defined
in that very file, read as whole names (capitals included). Every `minipg/...py` or
`tests/...py` file the docs name exists.
"""
import pathlib
import re

import pytest
from exercises import EXERCISES

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DEFAULT_FILE = "tests/exact/test_exact.py"

NAME = r"test_[A-Za-z0-9_]+"
PAIR = re.compile(rf"((?:[A-Za-z0-9_]+/)*test_[A-Za-z0-9_]+\.py)(?:::({NAME}))?")


def defined_tests(path):
    return set(re.findall(rf"^def ({NAME})\(", path.read_text(), re.M))


def resolve(cited):
    """The one test file a cited path (full, or its tail such as test_trpo.py) names."""
    matches = [path for path in TESTS.rglob(pathlib.Path(cited).name)
               if path.relative_to(ROOT).as_posix().endswith(cited)]
    return matches[0] if len(matches) == 1 else None


def citations(text):
    """(line, file or None, test name or None, the span) for each backticked citation, with
    `::name` and bare names resolved by the rules above."""
    current = None
    for match in re.finditer(r"`([^`\n]+)`", text):
        span, line = match.group(1), text.count("\n", 0, match.start()) + 1
        pair = PAIR.fullmatch(span)
        if pair:
            current = resolve(pair.group(1))
            yield line, current, pair.group(2), span
        elif re.fullmatch(rf"::{NAME}", span):
            yield line, current, span[2:], span
        elif re.fullmatch(NAME, span):
            yield line, ROOT / DEFAULT_FILE, span, span


def wrong_citations(text):
    wrong = []
    for line, path, name, span in citations(text):
        if path is None:
            wrong.append((line, span, "no such test file (or more than one)"))
        elif name is not None and name not in defined_tests(path):
            wrong.append((line, span, f"not a test of {path.relative_to(ROOT).as_posix()}"))
    return wrong


def test_every_test_cited_in_the_derivation_is_defined_in_the_file_cited():
    text = (ROOT / "docs" / "derivation.md").read_text()
    found = list(citations(text))
    assert len(found) > 100
    assert sum(1 for _, _, name, span in found if name and span.startswith("::")) > 30
    wrong = wrong_citations(text)
    assert not wrong, f"docs/derivation.md cites tests that are not where it says: {wrong}"


@pytest.mark.parametrize("doc", ["README.md", "docs/design.md", "benchmarks/README.md"])
def test_every_test_file_and_test_cited_in_the_other_docs_exists(doc):
    wrong = [(line, span, why) for line, span, why in wrong_citations((ROOT / doc).read_text())
             if not span.startswith("test_")]      # a bare name there is not a citation rule
    assert not wrong, f"{doc} cites tests that are not where it says: {wrong}"


@pytest.mark.parametrize("text, found", [
    # the old reader stopped at the first capital: test_J_... was checked as "test_"
    ("`test_J_is_not_a_test_anywhere`", "not a test of tests/exact/test_exact.py"),
    # a real test, cited in the wrong file
    ("`tests/exact/test_exact_is.py::test_grad_J_equals_the_policy_gradient_theorem_with_exact_"
     "advantages`", "not a test of tests/exact/test_exact_is.py"),
    # `::name` continues the file cited last, not any file
    ("`test_exact_is.py::test_bad_off_policy_arguments_are_rejected`, "
     "`::test_bad_estimator_arguments_are_rejected`", "not a test of"),
    ("`tests/exact/test_nothing.py::test_x`", "no such test file"),
])
def test_a_wrong_citation_is_caught(text, found):
    assert found in " ".join(why for _, _, why in wrong_citations(text))


def test_right_citations_pass():
    text = ("`tests/exact/test_exact.py::test_bad_estimator_arguments_are_rejected`, "
            "`::test_a_reward_shift_changes_the_gradient_when_episodes_can_end_early`,"
            " `test_exact_is.py::test_bad_off_policy_arguments_are_rejected`, "
            "`test_grad_J_equals_the_policy_gradient_theorem_with_exact_advantages`")
    assert len(list(citations(text))) == 4
    assert wrong_citations(text) == []


def test_every_source_file_named_in_the_docs_exists():
    paths = set()
    for doc in ("docs/derivation.md", "docs/design.md", "README.md"):
        text = (ROOT / doc).read_text()
        paths |= set(re.findall(r"`((?:minipg|examples|benchmarks|tests)/[A-Za-z0-9_/]+\.py)",
                                text))
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing


def test_every_exercise_names_its_function_file_and_test_and_its_bug_can_still_be_planted():
    # The mutation run itself (python tests/helpers/exercises.py) takes about 80 s and edits
    # source files, so it is not part of pytest; this keeps the text and the data in step.
    text = (ROOT / "docs" / "derivation.md").read_text()
    section = text[text.index("## 24. Exercises"):text.index("## 25. References")]
    numbered = re.findall(r"^\d+\. \*\*", section, re.M)
    assert len(numbered) == len(EXERCISES) >= 10
    for path, old, new, test in EXERCISES:
        assert (ROOT / path).read_text().count(old) == 1, (path, old)
        assert old != new
        test_file, name = test.split("::")
        assert name in defined_tests(ROOT / test_file), test
        assert f"`{name}`" in section or f"::{name}`" in section, name
        module = pathlib.Path(path).name
        assert module in section or path in section, path
