"""sweeplab's Hydra sweeper plugin (discovered by Hydra in the hydra_plugins namespace)."""
