"""Placeholder modeling code for the demo model."""


def load():
    return None
