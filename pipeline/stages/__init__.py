"""The stages of a run, in the order :func:`pipeline.run.run_experiment` calls them:

1. :mod:`~pipeline.stages.data`: load the data set, draw the splits, build the non-member sets
2. :mod:`~pipeline.stages.models`: load or train the target and shadow models
3. :mod:`~pipeline.stages.calibration`: wrap each model in its calibrated predictor
4. :mod:`~pipeline.stages.evaluation`: score every set once, fit the score attacks on the shadow
   model, evaluate them on the target
5. :mod:`~pipeline.stages.reference`: reference models, their signals, the reference attacks
6. :mod:`~pipeline.stages.held_out`: the held-out FPR table
7. :mod:`~pipeline.stages.report`: figures and the report
"""
