"""``report.html``: ``report.md`` as one self-contained page, readable offline in a browser.

:func:`to_html` converts the markdown subset the report writes (headings, paragraphs, bullet
lists, pipe tables, images, ``**bold**``, ``*italic*``, ```code```, ``<br>`` inside cells)
into HTML: the figures are inlined as base64 PNGs, every appendix table longer than
:data:`FOLD_ROWS` rows (and any table four times as long) is folded into a ``<details>``
element, and the page carries its own stylesheet, so the file alone is the report.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

__all__ = ["FOLD_ROWS", "to_html"]

#: Tables with more rows than this are folded (collapsible) in the appendices, and tables of
#: more than four times as many rows everywhere.
FOLD_ROWS = 12

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1b1b1b; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.86rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.45rem; vertical-align: top; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 0.2rem; border-radius: 3px; }
img { max-width: 100%; border: 1px solid #ddd; }
details { margin: 0.6rem 0; } summary { cursor: pointer; font-weight: 600; }
figure { margin: 1rem 0; } figcaption { font-style: italic; color: #444; }
"""


def _inline(text: str) -> str:
    """Inline markup of one line: escape, then code, bold, italic and ``<br>``."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part).replace("&lt;br&gt;", "<br>")
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
        out.append(s)
    return "".join(out)


def _image(alt: str, name: str, folder: Path) -> str:
    path = (folder / name).resolve()
    inside = path.parent == Path(folder).resolve() and path.suffix == ".png"
    if inside and path.is_file():  # only the report's own PNG figures are inlined
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        src = f"data:image/png;base64,{data}"
    else:  # a missing figure stays a link, never a broken page
        src = html.escape(name)
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _table(rows: list[str], fold: bool) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split(" | ")] for r in rows]
    header, body = cells[0], [c for c in cells[2:]]
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    lines = ["<table><thead><tr>" + head + "</tr></thead><tbody>"]
    lines += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
    lines.append("</tbody></table>")
    table = "\n".join(lines)
    if fold and len(body) > FOLD_ROWS:
        title = _inline(header[0]) + " ... "
        return f"<details><summary>table of {len(body)} rows ({title})</summary>{table}</details>"
    return table


def to_html(markdown: str, folder: Path, *, title: str = "stabtheory verify report") -> str:
    """The page of ``markdown`` (the report's subset), with the PNG figures of ``folder``
    inlined.

    Example:
      >>> page = to_html("# T\\n\\n| a | b |\\n|---|---|\\n| 1 | **2** |\\n", Path("."))
      >>> "<strong>2</strong>" in page and "<table>" in page
      True
    """
    lines = markdown.splitlines()
    body: list[str] = []
    k = 0
    appendix = False
    while k < len(lines):
        line = lines[k]
        if not line.strip():
            k += 1
            continue
        if line.startswith("|"):
            block = []
            while k < len(lines) and lines[k].startswith("|"):
                block.append(lines[k])
                k += 1
            body.append(_table(block, fold=appendix or len(block) > 4 * FOLD_ROWS + 2))
            continue
        if line.startswith("- ") or line.startswith("  "):
            items = []
            while k < len(lines) and (lines[k].startswith("- ") or lines[k].startswith("  ")):
                if lines[k].startswith("- "):
                    items.append(_inline(lines[k][2:]))
                elif items:
                    items[-1] += "<br>" + _inline(lines[k].strip())
                else:
                    items.append(_inline(lines[k].strip()))
                k += 1
            body.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            continue
        heading = re.match(r"^(#{1,4}) (.*)$", line)
        image = re.match(r"^!\[(.*)\]\((.*)\)$", line.strip())
        if heading:
            level = len(heading.group(1))
            if level <= 2:
                appendix = heading.group(2).startswith("Appendix")
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif image:
            body.append(f"<figure>{_image(image.group(1), image.group(2), folder)}</figure>")
        else:
            body.append(f"<p>{_inline(line)}</p>")
        k += 1
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
