"""``python -m ssehpc``: the command line (see :mod:`ssehpc.cli`)."""

from ssehpc.cli import app

app(prog_name="ssehpc")
