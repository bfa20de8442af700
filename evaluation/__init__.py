"""Evaluation of trained models: metrics (MPJPE, P-MPJPE, scale recovery), predictions of a
deploy net over a dataset split, result tables and figures."""
