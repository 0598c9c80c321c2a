"""A trial's user attributes, several in one write.

Optuna's API writes one attribute a call, each its own transaction: on PostgreSQL a round of statements
and a commit (2.7 ms a key on a server on the same machine, 1.6 ms a key when four share a transaction;
the gap grows with the server's distance). Its RDB storage (SQLite, PostgreSQL) has the write without the
commit, which this uses for all of a trial's attributes at once; any other storage (the journal file)
gets one call a key, as before.
"""

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.storages._rdb.models import TrialUserAttributeModel
from optuna.storages._rdb.storage import _create_scoped_session


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """`trial.set_user_attr(key, value)` for each item, in one transaction where the storage allows;
    a finished trial raises as `set_user_attr` does, and stores none of them."""
    storage = trial.storage
    backend = getattr(storage, "_backend", storage)  # Optuna's cache passes user attributes through
    if isinstance(backend, RDBStorage):
        with _create_scoped_session(backend.scoped_session, True) as session:
            for key, value in attrs.items():
                backend._set_trial_attr_without_commit(
                    session, TrialUserAttributeModel, trial._trial_id, key, value
                )
    else:
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial._trial_id, key, value)
    trial._cached_frozen_trial.user_attrs.update(attrs)  # the trial's own copy, as set_user_attr keeps it
