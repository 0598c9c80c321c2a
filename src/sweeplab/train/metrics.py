"""The metrics `train` returns and the ones it reports at each evaluation, declared for the sweeper
(kept free of torch: the command line imports it at every start)."""

# numbers of the run's summary.json (per_class_test_acc is a mapping, not a number)
METRICS = (
    "val_acc",
    "best_step",
    "final_val_acc",
    "final_val_loss",
    "final_train_loss",
    "final_train_acc",
    "test_acc",
    "test_loss",
    "test_acc_last",
    "params",
    "steps",
    "samples",
    "train_seconds",
    "samples_per_s",
    "wall_seconds",
)
# columns of history.csv, reported to the sweeper after each evaluation
INTERMEDIATE = ("val_acc", "val_loss", "train_acc", "train_loss")
