"""Run records -> tables, charts and verdicts: the last stage of the pipeline.

Nothing here imports torch or detectron2: boards and reproduction plans are made anywhere.

    results.py      the run record (results.json): schema, atomic write, strict reader, gather
    leaderboard.py  records -> mean ± std (n) per checkpoint and task metric; md, csv, html + png
    paper.py        paper tables (configs/paper/*.yaml): published cells, tolerances, checks
    reproduce.py    a paper table -> planned runs -> launched -> judged cell by cell
    launch.py       how planned runs are launched (here, or SLURM through submitit)
    cost.py         GPU-hour estimates of planned runs
"""
