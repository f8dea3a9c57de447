"""Reproduce a paper table: plan the runs, launch them, judge ours against the published values, report.

Builds on benchmark.records (run records, pooling); records never imports this package. Nothing
here imports torch or detectron2 at import time (the runs are launched as `python -m` commands).

    paper.py      paper tables (configs/paper/*.yaml): published cells, tolerances, checks
    table_yaml.py a table's YAML read without trusting it: alias expansion capped, duplicate keys refused
    published.py  a table's published values as leaderboard rows (records.leaderboard.build takes them)
    plan.py       options, hand-set tolerances, the matrix row x task x trial, run states, the --dry-run text
    assumed.py    which tasks' protocols rest on assumptions, and how verdicts on them are marked
    cost.py       GPU-hour estimates of planned runs
    launch.py     how planned runs are launched (here, or SLURM through submitit)
    judge.py      verdicts per cell (tolerance rule) and per check (Welch's t-test for two rows)
    report.py     the verdicts as OUTPUT/NAME.md and OUTPUT/NAME.csv
    run.py        the command, reproduce(opts): plan, launch, gather (one pool per cell), judge, report
"""
