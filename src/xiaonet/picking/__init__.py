"""Picks out: the one picker interface, STA/LTA, pick tables (CSV, QuakeML) and station figures."""
