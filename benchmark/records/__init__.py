"""Run records -> leaderboards: the record schema, how records are pooled, and the boards.

Nothing here imports torch or detectron2 (nor numpy at import): boards are made anywhere.
Reproduction of paper tables (benchmark.reproduce) builds on this package; nothing here imports it.

    results.py      the run record (results.json): schema, atomic write, strict reader -> Record, gather
    pooling.py      which records are averaged together (pool key, row tags, one pool per cell),
                    mean ± std (n) per cell (aggregate), Welch's t-test
    leaderboard.py  records -> a Board (rows, columns, marks); Markdown, CSV, PNG charts; writes the files
    render.py       what Markdown and HTML say alike: legend, headers, marks, section titles
    page.py         the board as one self-contained HTML page
    escape.py       text from records shown safely: hidden characters as escapes, Markdown cells, CSV cells
"""
