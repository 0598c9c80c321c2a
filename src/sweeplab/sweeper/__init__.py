"""sweeplab's Hydra sweeper (`sweeplab train -m`): its settings (`hydra.sweeper`), the space, setups and
plan of a sweep (`space`, `setups`, `spec`, `validate`, `preview`), a trial's config and Hydra job
(`composer`, `trial_config`, `job`, `replicates`, `packs`), the controller that runs them on the study
engine (`sweeplab.engine`), and SLURM (`slurm`)."""
