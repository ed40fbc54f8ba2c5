"""One evaluation for every route: a bundle of scores in, the paper-layout tables, held-out FPR
table, intervals, per-sample scores, reference-attack checks, report and figures out.

A preset run (:mod:`pipeline`) prepares its bundle from splits, models and non-member sets; a user
audit (:mod:`membership_audit`) builds it from a scores file or a model and data. Importing this
package does not load torch.
"""
