"""Comments say why the code is as it is, in the present tense; what a bug once was, and which issue
reported it, belongs in the commit message. This fails on an issue reference in the comments and
docstrings of chip's code (chip.py, handlers/, services/ with its Lua scripts, models/), naming the line."""

import ast
import io
import pathlib
import re
import tokenize

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [ROOT / "chip.py"]
    + [
        p
        for top in ("handlers", "services", "models")
        for pattern in ("*.py", "*.lua")
        for p in (ROOT / top).rglob(pattern)
    ]
)
# "issue 11", "issues 13 and 15", "PR 7", "#16", "GH-12"
REFERENCE = re.compile(r"\b(issues?|PR|pull request)\s*#?\d+|(?<![\w&#])#\d+\b|\bGH-\d+", re.IGNORECASE)


def comments(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring line of a Python or Lua file."""
    text = path.read_text()
    if path.suffix == ".lua":
        return [(n, line[line.index("--") :]) for n, line in enumerate(text.splitlines(), 1) if "--" in line]
    found = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(text).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found += [(first.lineno + i, line) for i, line in enumerate(first.value.value.splitlines())]
    return found


def test_the_pattern_finds_references_and_spares_the_rest():
    assert all(REFERENCE.search(text) for text in ("(issue 11)", "issues 13 and 15", "see #16", "PR 7", "GH-12"))
    assert not any(REFERENCE.search(text) for text in ("an issue with Redis", "v10.3.19", "a&#39;", "s<N>"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_comment_names_an_issue(path):
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text.strip()}" for line, text in comments(path) if REFERENCE.search(text)
    ]
    assert not found, (
        "a comment that names an issue tells history; say why the code is so, in the present "
        "tense, and leave the history to the commit message:\n" + "\n".join(found)
    )
