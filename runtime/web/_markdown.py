"""Just enough markdown for the API description on ``/docs``: paragraphs, ``* `` bullets,
`code` and **bold**; everything else is escaped."""

from __future__ import annotations

import re

from markupsafe import Markup, escape


def mini_markdown(text: str) -> Markup:
    """Paragraphs, ``* `` bullets, `code` and **bold**: enough for the API description."""
    out = []
    for block in str(text).split("\n\n"):
        lines = block.split("\n")
        if all(ln.startswith(("* ", "  ")) for ln in lines) and lines[0].startswith("* "):
            items, cur = [], []
            for ln in lines:
                if ln.startswith("* ") and cur:
                    items.append(" ".join(cur))
                    cur = []
                cur.append(ln[2:].strip())
            items.append(" ".join(cur))
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return Markup("".join(out))


def _inline(text: str) -> str:
    html = str(escape(text))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
