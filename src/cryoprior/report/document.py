"""A small document model rendered to Markdown and HTML (the experiment report's pages)."""

from __future__ import annotations

import html
import re

__all__ = ["Document"]


class Document:
    """A report as a list of blocks (headings, paragraphs, bullets, tables, images).

    Rendered to Markdown and to a self-contained HTML page.

    Text is Markdown-like: `code` spans and **bold** are rendered in both; PASS and **FAIL**
    are coloured in HTML.
    """

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def heading(self, level: int, text: str) -> None:
        """Add a heading of ``level`` (1 = title)."""
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        """Add a paragraph."""
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        """Add a bulleted list."""
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """Add a table (cells are text)."""
        self.blocks.append(("table", header, rows))

    def image(self, path: str, alt: str) -> None:
        """Add an image, by path relative to the report."""
        self.blocks.append(("img", path, alt))

    def code(self, text: str) -> None:
        """Add a preformatted block (a command, shown as is)."""
        self.blocks.append(("pre", text))

    def markdown_text(self, text: str, *, heading_offset: int = 0) -> None:
        """Add a Markdown text (a note written by hand) as blocks.

        The subset the project's notes use: ``#`` headings (``heading_offset`` levels down),
        fenced code blocks, pipe tables, ``-`` bullets and paragraphs (lines joined).
        """
        lines = text.splitlines()
        i = 0
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                self.para(" ".join(line.strip() for line in paragraph))
                paragraph.clear()

        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if stripped.startswith("```"):
                flush()
                end = i + 1
                while end < len(lines) and not lines[end].strip().startswith("```"):
                    end += 1
                self.code("\n".join(lines[i + 1 : end]))
                i = end + 1
                continue
            if stripped.startswith("#"):
                flush()
                level = len(stripped) - len(stripped.lstrip("#"))
                self.heading(min(level + heading_offset, 6), stripped[level:].strip())
            elif stripped.startswith("|"):
                flush()
                rows = []
                while i < len(lines) and lines[i].strip().startswith("|"):
                    cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                    if not all(set(c) <= set("-: ") for c in cells):
                        rows.append(cells)
                    i += 1
                if rows:
                    self.table(rows[0], rows[1:])
                continue
            elif stripped.startswith("- "):
                flush()
                items = []
                while i < len(lines) and lines[i].strip().startswith("- "):
                    items.append(lines[i].strip()[2:])
                    i += 1
                self.bullets(items)
                continue
            elif not stripped:
                flush()
            else:
                paragraph.append(line)
            i += 1
        flush()

    def markdown(self) -> str:
        """Render the document as Markdown."""
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append("#" * block[1] + " " + block[2])
            elif kind == "p":
                out.append(block[1])
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in block[1]))
            elif kind == "table":
                header, rows = block[1], block[2]
                lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(row) + " |" for row in rows]
                out.append("\n".join(lines))
            elif kind == "img":
                out.append(f"![{block[2]}]({block[1]})")
            elif kind == "pre":
                out.append(f"```\n{block[1]}\n```")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        """Render the document as one HTML page titled ``title``."""
        esc = html.escape
        body = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                body.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                head = "".join(f"<th>{esc(h)}</th>" for h in block[1])
                rows = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                    for row in block[2]
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                body.append(f'<figure><img src="{esc(block[1])}" alt="{esc(block[2])}"></figure>')
            elif kind == "pre":
                body.append(f"<pre>{esc(block[1])}</pre>")
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
            "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
            "td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
            ".pass{color:#070}.fail{color:#b00;font-weight:bold}"
        )
        return (
            f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )


def _inline(text: str) -> str:
    """Escape, then render `code` spans, PASS/**FAIL** marks and **bold**."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    out = out.replace("**FAIL**", '<span class="fail">FAIL</span>')
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return out.replace("PASS", '<span class="pass">PASS</span>')
