"""Split drawing: which rows of a data set train and test the target and shadow models, and which
are attack members and non-members.

- :mod:`datasets.splits.seeded`: the package's seeded stratified splits (and the shared ``Splits`` record)
- :mod:`datasets.splits.paper`: the splits the paper's scripts draw (same library calls and seeds)
- :mod:`datasets.splits.file`: the ``{stem}splits.npz`` file that records every drawn index
"""
