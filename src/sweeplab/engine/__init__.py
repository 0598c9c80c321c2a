"""The study engine, which knows nothing of Hydra: a study's storage and its lock (`storage`), the trial
lifecycle of a shared study (`lifecycle`: claim, heartbeat, reclaim, finish, retry), who owns a running
trial (`owner`), the trials' folders (`folders`), the processes trials run in (`workers`), Optuna's
samplers and pruners and what makes a resumed study the same (`study`), and the progress line."""
