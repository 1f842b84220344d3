"""Offset translation: the offset map, checkpoints and group offsets on the target."""
