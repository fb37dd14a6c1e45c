"""What a run and a sweep write: files, figures, console tables, sweep aggregation."""
