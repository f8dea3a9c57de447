"""Text from records and tables made safe to show: on a terminal, in Markdown, in a CSV cell.

Names, task and metric names, reasons and paths come from files anyone can write. Shown raw, an ANSI escape
rewrites the terminal, a BEL rings, a NUL cuts the line in some viewers, an RTL override (U+202E) shows
`gpj.exe` as `exe.jpg` and a zero-width space makes two different names look equal. `visible` writes every
such character as its escape (`\\x1b`, `\\u202e`), so the text shown is the text stored, and two different
names never look alike. The HTML page escapes the result once more with html.escape (records.page).
"""
import unicodedata

# Unicode categories with no glyph of their own: control (Cc: C0/C1, ANSI's ESC, BEL, NUL), format (Cf: bidi
# overrides and isolates, zero-width space/joiners, BOM), line/paragraph separators, unassigned and surrogates.
HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cn", "Cs")


def visible(text) -> str:
    """`text` with each character of no glyph written as its Python escape (\\x1b, \\u202e, \\U000e0001)."""
    text = str(text)
    if text.isprintable():  # the common case, fast (every HIDDEN character is non-printable)
        return text
    return "".join(_escaped(ch) if unicodedata.category(ch) in HIDDEN else ch for ch in text)


def _escaped(ch) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def md_cell(text) -> str:
    """One Markdown table cell (or heading, list item): one line, hidden characters shown, pipes and backslashes
    escaped, no HTML that a renderer would run."""
    text = visible(" ".join(str(text).split())).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def csv_text(text) -> str:
    """A CSV text cell shown as text: hidden characters escaped, and one that a spreadsheet would run as a formula
    (starting with = + - @, a tab or a carriage return) gets a leading quote."""
    text = str(text)
    text = "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
    return visible(text)
