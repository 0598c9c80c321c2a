"""A column's header as people write it in reports (`Layers`, `Act.`, `Val. acc.`); any other column
keeps its key, and a report spec's `headers` win over both."""

from collections.abc import Mapping

HEADERS = {
    "model.name": "Model",
    "model.hidden": "Layers",
    "model.activation": "Act.",
    "model.norm": "Norm.",
    "model.dropout": "Dropout",
    "model.channels": "Channels",
    "model.kernel_size": "Filter size",
    "optimizer.name": "Optim.",
    "optimizer.lr": "LR",
    "optimizer.momentum": "Momentum",
    "optimizer.weight_decay": "L2",
    "scheduler.name": "LR schedule",
    "trainer.batch_size": "Batch size",
    "trainer.max_steps": "Steps",
    "trainer.epochs": "Epochs",
    "loss.name": "Loss",
    "preprocess.name": "Preproc.",
    "val_acc": "Val. acc.",
    "test_acc": "Test acc.",
    "test_acc_last": "Test acc. (last)",
    "params": "Params",
    "train_seconds": "Train s",
    "study": "Study",
    "trainer.seed": "Seed",
    "status": "State",
}


def header(column: str, headers: Mapping[str, str]) -> str:
    if column in headers:
        return headers[column]
    if column.startswith("test_acc[") and column.endswith("]"):
        return column[len("test_acc[") : -1]  # a class's name
    return " / ".join(HEADERS.get(part, part) for part in column.split("+"))
