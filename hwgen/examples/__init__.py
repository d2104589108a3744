"""Runnable examples that ship with hwgen (``python -m hwgen.examples.digits``)."""
