"""Scoring picks against reference picks, shared by training (model selection) and evaluation:
pick matching and metrics (:mod:`xiaonet.scoring.matching`), the teachers' consensus as a
reference (:mod:`xiaonet.scoring.consensus`) and a training record's reference picks
(:mod:`xiaonet.scoring.references`). Pure numpy; no torch."""
