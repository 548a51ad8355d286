#!/usr/bin/env python3
# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""One mechanical pass that makes the tree pass the ament linter tests.

Run from the repository root, once, after the branches that touch many files have merged (it
edits nearly every Python file)::

    python tools/lint_pass.py            # edit in place, then print what is left by hand
    python tools/lint_pass.py --check    # only list what would change

Steps (each idempotent):

1. ``ruff check --select I --fix`` with the Google-compatible isort settings of ruff.toml
   (flake8-import-order's ``google`` style, which ament_flake8 uses).
2. The copyright + MIT header ament_copyright recognises at the top of every non-empty ``.py``
   file (after a shebang).
3. Docstrings (pydocstyle's Google convention, as test/test_pep257.py and setup.cfg use):
   closing quotes of multi-line docstrings on their own line (D209); a one-line summary ending
   with a period, separated from the rest by a blank line (D205, D415) -- the first sentence of
   a wrapped summary paragraph becomes the summary when it fits on one line, the rest of the
   paragraph is re-wrapped below it.
4. Trailing blank lines (W391) and runs of more than two blank lines (E303).

What it cannot decide (a first sentence longer than a line, long code lines, a few flake8
plugin findings) is listed at the end; fix those by hand, then run test/test_flake8.py,
test/test_pep257.py and test/test_copyright.py.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
import re
import subprocess
import sys
import textwrap

HEADER = """# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""
MAX_LINE = 99
SKIP_DIRS = {"build", "install", "log", "runs"}
_SENTENCE_END = re.compile(  # a sentence ends at . ! ? -- not after Eq. Fig. e.g. i.e. vs.
    r"(?<=[.!?])(?<!Eq\.)(?<!Fig\.)(?<!e\.g\.)(?<!i\.e\.)(?<!vs\.)\s+(?=[A-Z`(*\"'0-9])")


def python_files(root: Path) -> list[Path]:
    """Tracked-looking Python files: no dot/underscore folders, no colcon output folders."""
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if any(p.startswith((".", "_")) or p in SKIP_DIRS for p in parts):
            continue
        out.append(path)
    return out


def add_header(text: str) -> str:
    """``text`` with :data:`HEADER` at the top (after a shebang), unless it has one."""
    if not text.strip() or "# Copyright" in text.split("\n\n", 1)[0]:
        return text
    if text.startswith("#!"):
        shebang, _, rest = text.partition("\n")
        return f"{shebang}\n{HEADER}{rest}"
    return HEADER + text


def _docstring_nodes(tree: ast.AST) -> list[ast.Constant]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.append(body[0].value)
    return out


def _capitalised(first_line: str) -> str:
    """The first word capitalised when it is a plain lower-case word (D403)."""
    m = re.match(r"^(\s*)([a-z]+)(?=[\s,.:;]|$)", first_line)
    if not m:
        return first_line
    return m.group(1) + m.group(2).capitalize() + first_line[m.end():]


_CLAUSE_BREAKS = (": ", "; ", " -- ", ", ")


def _split_clause(sentence: str, room: int) -> tuple[str | None, str]:
    """A long first sentence as ``(summary that fits in room, the rest)``.

    Cut at the last clause break (colon, semicolon, dash, comma, in that preference) that leaves a
    summary of at least a third of the room; ``(None, "")`` when there is none.
    """
    for brk in _CLAUSE_BREAKS:
        cut = sentence.rfind(brk, 0, room - 1)
        while cut > 0 and sentence.count("``", 0, cut) % 2:  # not inside an inline literal
            cut = sentence.rfind(brk, 0, cut)
        if cut >= room // 3:
            head = sentence[:cut].rstrip(" ,;:-") + "."
            tail = sentence[cut + len(brk):].strip()
            if tail[:1].islower():
                tail = tail[0].upper() + tail[1:]
            return head, tail
    return None, ""


def _fix_docstring(lines: list[str], start: int, end: int) -> tuple[list[str], str]:
    """New lines for the docstring occupying ``lines[start:end]`` (0-based).

    And a problem text when it could not be fixed (``""`` when fixed or already fine).
    """
    first = lines[start]
    m = re.match(r'^(\s*)([rRuU]?)"""(.*)$', first)
    if not m:
        return lines[start:end], ""  # '''-quoted or a single-quoted string: leave it
    indent, prefix, rest = m.group(1), m.group(2), m.group(3)
    body_lines = [rest] + lines[start + 1:end]
    text = "\n".join(body_lines)
    if not prefix and "\\" in text and not re.search(r"\\[^\\]", text.replace("\\\\", "")):
        # only doubled backslashes (shell line continuations in examples): a raw docstring
        # shows the same text (D301)
        prefix, text = "r", text.replace("\\\\", "\\")
    close = text.rfind('"""')
    if close < 0:
        return lines[start:end], ""
    content, after = text[:close], text[close + 3:]
    raw = content.split("\n")
    raw = [_capitalised(raw[0])] + raw[1:]
    if len(raw) == 1:  # one-line docstring
        s = raw[0].strip()
        if s and s[-1] not in ".!?":
            s += "."
        new = f'{indent}{prefix}"""{s}"""{after}'
        if len(new) > MAX_LINE:
            return lines[start:end], "one-line docstring too long once a period is added"
        return [new], ""
    # multi-line: paragraphs of the first lines, keeping the rest verbatim
    body = [raw[0].strip()] + raw[1:]
    if not body[0]:
        return lines[start:end], ""  # summary on the second line (not our style): leave it
    para_end = 1
    while para_end < len(body) and body[para_end].strip():
        para_end += 1
    summary_para = " ".join(b.strip() for b in body[:para_end])
    remainder = body[para_end:]
    problem = ""
    if para_end == 1 and summary_para[-1:] in ".!?":
        summary, extra = summary_para, ""
    else:
        parts = _SENTENCE_END.split(summary_para, maxsplit=1)
        summary, extra = parts[0], (parts[1] if len(parts) > 1 else "")
        if summary[-1:] not in ".!?":
            if summary.endswith(":"):
                summary = summary[:-1] + "."
            else:
                summary += "."
        room = MAX_LINE - len(indent) - len(prefix) - 3
        if len(summary) > room:
            head, tail = _split_clause(summary, room)
            if head is None:
                return lines[start:end], "first sentence longer than one line: shorten it"
            summary, extra = head, f"{tail} {extra}".strip()
    tail_lines = [r.rstrip() for r in remainder]
    while tail_lines and not tail_lines[-1].strip():
        tail_lines.pop()
    one_line = f'{indent}{prefix}"""{summary}"""{after}'
    if not extra and not tail_lines and len(one_line) <= MAX_LINE:
        return [one_line], ""
    out = [f'{indent}{prefix}"""{summary}']
    if extra:
        width = MAX_LINE - len(indent)
        out.append("")
        wrapped = textwrap.wrap(extra, width=width, break_long_words=False,
                                break_on_hyphens=False)
        out += [f"{indent}{w}" for w in wrapped]
    tail = [r.rstrip() for r in remainder]
    while tail and not tail[-1].strip():
        tail.pop()
    if tail:
        if out[-1] != "":
            out.append("")
        out += [t if t.strip() else "" for t in (tail[1:] if not tail[0].strip() else tail)]
    out.append(f'{indent}"""{after}')
    return out, problem


def fix_docstrings(text: str) -> tuple[str, list[tuple[int, str]]]:
    """``text`` with its docstrings fixed, and ``(line, problem)`` for those left alone."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        return text, [(exc.lineno or 0, f"syntax error: {exc.msg}")]
    lines = text.split("\n")
    problems = []
    for node in sorted(_docstring_nodes(tree), key=lambda n: -n.lineno):
        start, end = node.lineno - 1, node.end_lineno
        new, problem = _fix_docstring(lines, start, end)
        if problem:
            problems.append((node.lineno, problem))
        lines[start:end] = new
    return "\n".join(lines), sorted(problems)


def strip_trailing_blank_lines(text: str) -> str:
    """No blank lines at the end (W391) and at most two blank lines in a row (E303)."""
    if not text.strip():
        return text
    return re.sub(r"\n{4,}", "\n\n\n", text.rstrip("\n") + "\n")


RUFF_ISORT = """
[lint.isort]
# flake8-import-order's "google" style (ament_flake8): one alphabetical order per section,
# `import x` and `from x import y` mixed, case-insensitive
force-sort-within-sections = true
order-by-type = false
case-sensitive = false
known-first-party = ["temcoco_core", "temcoco_ros"]
"""


def configure_ruff(root: Path) -> bool:
    """Ruff.toml: ament's line length (99) and Google import order; True when changed."""
    path = root / "ruff.toml"
    text = path.read_text()
    new = re.sub(r"^line-length = \d+$", f"line-length = {MAX_LINE}", text, flags=re.M)
    if "[lint.isort]" not in new:
        new = new.replace("\n[lint.per-file-ignores]", RUFF_ISORT + "\n[lint.per-file-ignores]")
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only list what would change")
    ap.add_argument("--root", type=Path, default=Path.cwd())
    args = ap.parse_args(argv)
    root = args.root.resolve()
    if not args.check:
        configure_ruff(root)
        subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "I", "--fix", "-q",
                        str(root)], cwd=root, check=False)
    changed, left = [], []
    for path in python_files(root):
        text = path.read_text()
        new = add_header(text)
        new, problems = fix_docstrings(new)
        new = strip_trailing_blank_lines(new)
        rel = path.relative_to(root)
        left += [f"{rel}:{line}: {why}" for line, why in problems]
        if new != text:
            changed.append(str(rel))
            if not args.check:
                path.write_text(new)
    print(f"{'would change' if args.check else 'changed'} {len(changed)} files")
    if left:
        print("left for a person:\n  " + "\n  ".join(left))
    return 0


if __name__ == "__main__":
    sys.exit(main())
