"""Griffe extension: shows the docstrings' doctest examples as code blocks.

The package's docstrings follow the Keras style: an `Example:` line, then `>>>` lines at
the docstring's own indentation. Griffe's Google parser only turns indented `>>>` lines
of an `Examples:` section into code, so these would render as Markdown block quotes
(and their outputs, such as `[[0, 1], [2, 3]]`, as broken cross-references). This
extension wraps each run of doctest lines (a `>>>` line and the `...` continuation and
output lines after it, up to a blank line) in a fenced `pycon` block before parsing.
"""

from __future__ import annotations

import griffe

_FENCE = "```"


def fence_doctests(text: str) -> str:
    """Wraps unindented doctest runs of a docstring in fenced `pycon` code blocks.

    >>> fence_doctests("Example:\\n\\n>>> 1 + 1\\n2\\n\\nDone.").splitlines()
    ['Example:', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'Done.']
    """
    out: list[str] = []
    in_fence = in_doctest = False
    for line in text.splitlines():
        if line.startswith(_FENCE) and not in_doctest:
            in_fence = not in_fence
        elif not in_fence:
            if not in_doctest and line.startswith(">>>"):
                out.append(_FENCE + "pycon")
                in_doctest = True
            elif in_doctest and not line.strip():
                out.append(_FENCE)
                in_doctest = False
        out.append(line)
    if in_doctest:
        out.append(_FENCE)
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctest examples of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
