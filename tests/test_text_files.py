"""Every tracked text file is clean text, and every formula of the docs parses.

Control characters. A Python string written without the r prefix turns "\\frac" into a form
feed and "rac", "\\text" into a tab and "ext", "\\big" into a backspace and "ig": the file still
looks almost right in a terminal and the formula no longer renders. So no tracked text file may
hold a control character other than the newline, with two exceptions that a format needs:

- "\\r\\n" line ends in .csv files: Python's csv module writes them (RFC 4180), and the run
  fixtures under tests/run/fixtures are files written by older versions of the code;
- a tab at the start of a line of a Makefile (make requires it for recipe lines).

Tabs elsewhere are not allowed: the code is indented with spaces, and a tab in a formula is the
symptom above.

Formulas. Every $...$ and $$...$$ of docs/*.md and README.md (outside code) must parse: braces
balanced, \\left/\\right and \\begin/\\end paired, each paragraph holding whole formulas, and
every command one of KNOWN_COMMANDS, so that "\\rac" or "\\ext" (the remains of an escape) or a
typo fails here instead of in a reader's browser.
"""
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

BINARY_SUFFIXES = {".png", ".npz", ".npy", ".pkl", ".so", ".gif", ".jpg", ".mp4"}
# Used only when the tree is not a git checkout (an unpacked archive): what git would ignore.
UNTRACKED_DIRS = {".git", "build", "runs", ".hypothesis", ".pytest_cache", "__pycache__",
                  ".ci-venv"}

KNOWN_COMMANDS = set("""
alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi
rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi Omega
frac tfrac dfrac sqrt sum prod int log exp min max sup inf arg lim det Pr tanh
mathbb mathrm mathbf mathcal text texttt textbf operatorname boldsymbol
hat bar tilde vec dot ddot overline underline underbrace overbrace
left right big Big bigg Bigg
cdot cdots ldots dots times odot otimes div pm mp
le leq ge geq ne neq approx sim propto equiv ll gg in notin subset subseteq
to leftarrow rightarrow Leftarrow Rightarrow mapsto
mid lvert rvert lVert rVert langle rangle lfloor rfloor lceil rceil
quad qquad
nabla partial infty ell top forall exists emptyset
begin end
""".split())
ENVIRONMENTS = {"cases", "aligned", "array", "matrix", "pmatrix", "bmatrix"}


def tracked_files():
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(path.relative_to(ROOT) for path in ROOT.rglob("*") if path.is_file()
                      and not UNTRACKED_DIRS.intersection(path.relative_to(ROOT).parts)
                      and path.suffix not in {".c", ".html"})
    return [pathlib.Path(name) for name in listing.decode().split("\0") if name]


def text_files():
    for path in tracked_files():
        if path.suffix in BINARY_SUFFIXES or not (ROOT / path).is_file():
            continue
        yield path


def control_characters(path, text):
    """(line number, character) of every control character the file's format does not need."""
    is_csv = path.suffix == ".csv"
    is_makefile = path.name == "Makefile" or path.suffix == ".mk"
    found = []
    for number, line in enumerate(text.split("\n"), 1):
        if is_csv and line.endswith("\r"):
            line = line[:-1]
        if is_makefile:
            line = line.lstrip("\t")
        found += [(number, repr(c)) for c in line if ord(c) < 32 or ord(c) == 127]
    return found


def test_every_tracked_text_file_is_utf8_without_control_characters():
    files = list(text_files())
    assert any(path.name == "derivation.md" for path in files)
    bad = {}
    for path in files:
        data = (ROOT / path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            bad[str(path)] = f"not UTF-8: {error}"
            continue
        found = control_characters(path, text)
        if found:
            by_line = {}
            for number, character in found:
                by_line.setdefault(number, []).append(character)
            bad[str(path)] = by_line
    assert not bad, f"control characters by line in tracked text files: {bad}"


# ------------------------------------------------------------------------------------------
# Formulas
# ------------------------------------------------------------------------------------------

def strip_code(text):
    """The markdown without fenced blocks, indented code blocks and inline code spans (their
    dollars are shell variables and their backslashes code), lines kept so that numbers hold."""
    blank = lambda match: re.sub(r"[^\n]", " ", match.group(0))      # noqa: E731
    text = re.sub(r"^```.*?^```", blank, text, flags=re.S | re.M)
    text = re.sub(r"(?:^|(?<=\n\n))(?:(?: {4}|\t).*(?:\n|$))+", blank, text)
    return re.sub(r"`[^`\n]*`", blank, text)


def formulas(text):
    """(line number, formula) for every $$...$$ and $...$; a paragraph whose dollars do not
    pair up yields (line, None)."""
    text = strip_code(text)
    found = []
    offset = 0
    for paragraph in re.split(r"(\n\s*\n)", text):
        line = text.count("\n", 0, offset) + 1
        offset += len(paragraph)
        rest = re.sub(r"\\\$", "  ", paragraph)
        position = 0
        while True:
            start = rest.find("$", position)
            if start < 0:
                break
            delimiter = "$$" if rest.startswith("$$", start) else "$"
            end = rest.find(delimiter, start + len(delimiter))
            if end < 0:
                found.append((line + paragraph.count("\n", 0, start), None))
                break
            found.append((line + paragraph.count("\n", 0, start),
                          rest[start + len(delimiter):end]))
            position = end + len(delimiter)
    return found


def formula_errors(formula):
    """What keeps a formula from parsing, or [] if nothing does."""
    if formula is None:
        return ["a $ without its closing $"]
    errors = []
    unescaped = re.sub(r"\\[{}]", "", formula)
    depth = 0
    for c in unescaped:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            errors.append("a } closes no {")
            break
    if depth > 0:
        errors.append(f"{depth} unclosed {{")
    unknown = sorted(set(re.findall(r"\\([A-Za-z]+)", formula)) - KNOWN_COMMANDS)
    if unknown:
        errors.append("unknown commands " + ", ".join("\\" + name for name in unknown))
    stack = []
    for match in re.finditer(r"\\(left|right|begin|end)\b(?:\{(\w+\*?)\})?", formula):
        kind, name = match.groups()
        if kind in ("left", "begin"):
            if kind == "begin" and name not in ENVIRONMENTS:
                errors.append(f"unknown environment {name!r}")
            stack.append((kind, name))
        elif not stack or stack[-1] != ({"right": "left", "end": "begin"}[kind],
                                        name if kind == "end" else None):
            errors.append(f"\\{kind}{'{' + name + '}' if name else ''} closes nothing")
            break
        else:
            stack.pop()
    else:
        if stack:
            errors.append(f"unclosed {[k for k, _ in stack]}")
    return errors


def document_formula_errors(text):
    return {line: errors for line, formula in formulas(text)
            if (errors := formula_errors(formula))}


def documents():
    return sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("path", documents(), ids=lambda path: path.name)
def test_every_formula_in_the_docs_parses(path):
    text = path.read_text(encoding="utf-8")
    errors = document_formula_errors(text)
    assert not errors, f"{path.name}: formulas that do not parse, by line: {errors}"


def test_the_derivation_has_formulas_for_the_check_to_read():
    # The check above passes vacuously if the extraction finds nothing; it must find the
    # display formulas (hundreds of them) and the inline ones.
    found = formulas((ROOT / "docs" / "derivation.md").read_text(encoding="utf-8"))
    assert len(found) > 300
    assert any(r"\frac" in formula for _, formula in found if formula)


@pytest.mark.parametrize("broken, complaint", [
    (r"$$b = \rac{a}{b}$$", "unknown commands"),
    (r"$\ext{one per state}$", "unknown commands"),
    (r"$\frac{a}{b$", "unclosed"),
    (r"$\frac{a}b}$", "closes no"),
    (r"$\left( x \big)$", "unclosed"),
    (r"$x \right)$", "closes nothing"),
    (r"$\begin{cases} a \end{array}$", "closes nothing"),
    ("a $x$ and $y", "without its closing"),
])
def test_the_formula_check_rejects_what_an_escape_or_a_typo_leaves(broken, complaint):
    errors = document_formula_errors(broken)
    assert complaint in " ".join(errors.get(1, [])), errors


def test_control_characters_are_allowed_only_where_the_format_needs_them():
    assert control_characters(pathlib.Path("a.csv"), "a,b\r\n1,2\r\n") == []
    assert control_characters(pathlib.Path("a.md"), "a,b\r\n") == [(1, repr("\r"))]
    assert control_characters(pathlib.Path("Makefile"), "all:\n\tcc x.c\n") == []
    assert control_characters(pathlib.Path("a.py"), "x = 1\t# tab\n") == [(1, repr("\t"))]
    assert control_characters(pathlib.Path("a.md"), "\\big( x \x08ig)") == [(1, repr("\x08"))]
