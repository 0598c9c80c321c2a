"""Sweeps: sweeplab's Hydra sweeper on Optuna (space, study, controller, worker jobs)."""
