"""Training: data sets, the MLP, builders from config, one run's fit and the stacked engine."""
