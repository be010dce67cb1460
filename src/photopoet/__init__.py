"""photopoet: turn a folder of photos into ready-to-post sets."""

__version__ = "0.1.0"
