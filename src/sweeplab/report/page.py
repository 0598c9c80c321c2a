"""`index.html`: the report's `index.md` as one self-contained web page (its figures inlined as data
URIs, its style in the page), so it opens from disk with no server and no network. Python-Markdown
converts the page; the tables are the Markdown tables of `index.md`, marks and intervals included."""

import base64
import html
import re
from pathlib import Path

import markdown

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; display: block; margin: 1rem 0; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def to_page(text: str, folder: Path, title: str) -> str:
    """The Markdown `text` of a report in `folder` as a whole HTML page; each figure (`x.png` in the
    folder) inlined, every other link left as it is (the tables' CSV, LaTeX and PDF files beside it)."""
    body = markdown.markdown(text, extensions=["tables"], output_format="html")

    def inline(match: re.Match) -> str:
        name = html.unescape(match.group(1))
        path = folder / name
        if Path(name).name != name or not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
