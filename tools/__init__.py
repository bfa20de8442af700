"""Command-line tools a researcher runs: training, evaluation, figures, smoke runs."""
