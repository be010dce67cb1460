"""Evaluations of the stages against labelled data."""
