"""Scoring pickers: pick matching, the teachers' consensus, whole-trace evaluation, the pick
benchmark tasks, reports and the network-held-out study."""
