"""Rebalancing policies: pure functions from metrics to a stage's next shares.

``config`` is the ``rebalance:`` section of a stage (rules between stages, or the ODM bandit inside
one) and its load-time checks; ``rules`` evaluates declarative conditions on ``evals.jsonl``;
``odm`` is the EXP3 bandit of Albalak et al. 2023; ``shares`` fits any proposal into per-source
bounds. Nothing here touches a model, a file or a clock: the training loop feeds metrics in and
writes the shares that come out into the schedule, so every decision is replayable from its inputs.
"""
