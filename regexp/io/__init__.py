"""File I/O primitives: atomic writes of CSVs, text, figures and checkpoints."""
