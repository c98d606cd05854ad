"""ssehpc: ML-force-field molecular dynamics of solid-state electrolytes, serial to MPI."""

__version__ = "0.1.0"
