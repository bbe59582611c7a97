"""``smollab synth``: synthetic instruction data the way SmolTalk's new sets were made (arXiv 2502.02737 §5.1).

- ``magpie``       MagPie-Ultra: the model writes the user turns from a pre-query prompt, then answers them
- ``constraints``  Smol-Constraints: tasks + sampled IFEval constraints, kept only if IFEval's checkers accept
- ``rewrite``      Smol-Rewrite / Smol-Summarization: real documents summarised or rewritten in a register
- ``records``      a conversation being built, the reasons a reply is dropped, decontamination and dedup
- ``run``          the stages behind one request cache, and the output files; ``report``: the counts
- ``config``       the recipe schema; ``cli``: the verb, ``--dry-run``'s plan

The trade-off of the package as a whole: it generates and checks, but does not judge. MagPie-Ultra also
scored every conversation with an 8B tagger, a safety model and a reward model and filtered on them;
here only verifiable checks decide (empty, cut off, constraint failed, contaminated, duplicate), and a
judge (curation's annotator) is a separate, later step.
"""
