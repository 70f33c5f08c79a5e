"""Reusable dashboard widgets; each carries its own DEFAULT_CSS."""
