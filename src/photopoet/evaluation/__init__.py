"""Labelled sets built from real photos, for measuring a stage against known answers."""
