"""Waveforms in: reading and cleaning files, training records and their splits, augmentations."""
