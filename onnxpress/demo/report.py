"""REPORT.md and a self-contained REPORT.html from one list of sections.

Each section holds paragraphs, tables, figures (PNG files) and the commands that reproduce it.
The Markdown links the PNGs beside it; the HTML embeds them as base64 `data:` URIs and loads
nothing from anywhere, so it opens offline and can be mailed as one file.
"""
from __future__ import annotations

import base64
import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from onnxpress.runtime.durable import atomic_write_text

FIGURES_DIR = "report_figures"
CODE_SPAN = re.compile(r"`([^`]+)`")
STRONG = re.compile(r"\*\*([^*]+)\*\*")

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: min(100%, 900px); max-height: 640px; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
pre { background: #f6f8fa; padding: .6em .8em; white-space: pre-wrap; font-size: 12.5px; }
code { background: #f6f8fa; padding: 0 .2em; }
"""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path  # a PNG
    caption: str


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)  # `code` and **bold** are kept in both formats
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # shell lines that reproduce this section
    commands_label: str = "Reproduce:"


@dataclass
class Report:
    title: str
    sections: list[Section]


# -- Markdown ---------------------------------------------------------------------------------

def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _md_table(table: Table) -> list[str]:
    return [_md_row(table.header), "|" + "|".join("---" for _ in table.header) + "|"] + [_md_row(r) for r in table.rows]


def to_markdown(report: Report, figure_names: dict[Path, str]) -> str:
    lines = [f"# {report.title}", ""]
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        for table in section.tables:
            lines += _md_table(table) + [""]
        for figure in section.figures:
            lines += [f"![{figure.caption}]({FIGURES_DIR}/{figure_names[figure.path]})", "", f"*{figure.caption}*", ""]
        if section.commands:
            lines += [section.commands_label, "", "```", *section.commands, "```", ""]
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------------

def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    return STRONG.sub(r"<strong>\1</strong>", CODE_SPAN.sub(r"<code>\1</code>", escaped))


def _is_number(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,]+\s*(%|x|s|ms|MB|MiB)?", cell.strip()))


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td class=\"num\">{_inline(c)}</td>" if _is_number(c) else f"<td>{_inline(c)}</td>"
                         for c in row) + "</tr>"
        for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def to_html(report: Report) -> str:
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{html.escape(report.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(report.title)}</h1>"]
    for section in report.sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{_inline(p)}</p>" for p in section.paragraphs]
        parts += [_html_table(t) for t in section.tables]
        for figure in section.figures:
            caption = html.escape(figure.caption)
            parts.append(f"<figure><img src=\"{data_uri(figure.path)}\" alt=\"{caption}\">"
                         f"<figcaption>{caption}</figcaption></figure>")
        if section.commands:
            commands = html.escape("\n".join(section.commands), quote=False)
            parts.append(f"<p>{html.escape(section.commands_label)}</p><pre><code>{commands}</code></pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """Write REPORT.md (figures copied into report_figures/) and REPORT.html (figures embedded)."""
    out = Path(out)
    figures_dir = out / FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    names: dict[Path, str] = {}
    for figure in (f for s in report.sections for f in s.figures):
        if figure.path not in names:
            name = figure.path.name
            while name in names.values():
                name = f"{figure.path.parent.name}-{name}"
            names[figure.path] = name
            if figure.path.resolve() != (figures_dir / name).resolve():
                shutil.copyfile(figure.path, figures_dir / name)
    paths = {"markdown": out / "REPORT.md", "html": out / "REPORT.html"}
    atomic_write_text(paths["markdown"], to_markdown(report, names))
    atomic_write_text(paths["html"], to_html(report))
    return paths
