"""A small document model (sections of text, tables and figures) rendered to Markdown and HTML."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""

    def __post_init__(self) -> None:
        if not self.rows:  # an empty table still says so
            self.rows = [["(none)"] + [""] * (len(self.headers) - 1)]


@dataclass
class Figure:
    name: str  # file stem
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # str (a paragraph), Table or Figure


def _md_cell(v: str) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section], figure_dir: str) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, str):
                out += [b, ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"*{b.caption}*", ""]
                out.append("| " + " | ".join(map(_md_cell, b.headers)) + " |")
                out.append("|" + "---|" * len(b.headers))
                out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b.rows]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{b.caption}]({figure_dir}/{b.name}.png)", "", f"*{b.caption}*", ""]
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f2f2f2}
figure{margin:1em 0}img{max-width:100%}figcaption,caption{font-style:italic;color:#555}
.holds{color:#060}.differs{color:#a00}.notmeasured{color:#777}"""

# Marks, once the page has loaded, how many of its images decoded (read by the browser test).
_CHECK = """window.addEventListener("load",function(){var i=Array.prototype.slice.call(
document.images);document.body.setAttribute("data-images-loaded",i.filter(function(x){
return x.complete&&x.naturalWidth>0}).length+"/"+i.length)});"""


def to_html(title: str, sections: list[Section]) -> str:
    e = html.escape
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}"
           f"</title><style>{_CSS}</style></head><body><h1>{e(title)}</h1>"]
    for s in sections:
        out.append(f"<h2>{e(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, str):
                out.append(f"<p>{e(b)}</p>")
            elif isinstance(b, Table):
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
                rows = "".join("<tr>" + "".join(_td(v) for v in r) + "</tr>" for r in b.rows)
                out.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
                           f"</table>")
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png).decode()
                out.append(f"<figure><img alt='{e(b.caption)}' src='data:image/png;base64,"
                           f"{data}'><figcaption>{e(b.caption)}</figcaption></figure>")
    out.append(f"<script>{_CHECK}</script></body></html>")
    return "".join(out)


def _td(v) -> str:
    text = html.escape(str(v))
    cls = {"holds": "holds", "differs": "differs", "not measured": "notmeasured"}.get(str(v))
    return f"<td class='{cls}'>{text}</td>" if cls else f"<td>{text}</td>"
