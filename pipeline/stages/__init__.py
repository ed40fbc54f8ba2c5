"""The stages of a run, in the order :func:`pipeline.run.run_experiment` calls them; each takes typed
inputs and returns one frozen result, and none writes the manifest (the run records what they return):

1. :mod:`~pipeline.stages.data`: load the data set, draw the splits, build the non-member sets
2. :mod:`~pipeline.stages.models`: load or train the target and shadow models
3. :mod:`~pipeline.stages.calibration`: wrap each model in its calibrated predictor
   (1-3 hand forward :class:`~pipeline.stages.prepared.PreparedRun`)
4. :mod:`~pipeline.stages.scoring`: every model over every sample once (:class:`~pipeline.stages.scoring.RunScores`)
5. :mod:`~engine.fitting`: fit the score attacks on the shadow model, evaluate them on the target
6. :mod:`~pipeline.stages.reference`: reference models, their signals, the reference attacks, then
   :mod:`~engine.reference_checks`: their null test and each reference model as the target
7. :mod:`~pipeline.stages.tables`: the paper-layout attack and performance tables
8. :mod:`~engine.held_out`: the held-out FPR table
9. :mod:`~engine.intervals`: bootstrap 95% intervals of the headline numbers
10. :mod:`~pipeline.stages.report`: figures and the report
"""
