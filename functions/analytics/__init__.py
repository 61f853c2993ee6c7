"""Histograms, per-user stats, admin analytics and metric windows for the rollout evaluator."""
