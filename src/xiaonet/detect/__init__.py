"""Earthquake detection for a network (``xiaonet detect``): picks associated across stations
into located events with PyOcto.

``stations`` (StationXML / CSV), ``velocity`` (0D / 1D models, travel-time tables),
``association`` (the PyOcto call), ``location`` (least-squares refinement),
``uncertainty`` (linearised errors), ``catalog`` (QuakeML, events and assignment CSVs),
``reference`` (a catalog event to compare with), ``plotting`` (a map per event),
``synthetic`` (seeded networks and pick tables for tests and the benchmark).
"""
