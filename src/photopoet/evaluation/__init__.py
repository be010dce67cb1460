"""Labelled sets and evaluations of the stages against known answers."""
