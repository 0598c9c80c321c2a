"""The console handler of sweeplab's logging (set in conf/config.yaml for Hydra's job and own logs)."""

import logging


class BarSafeHandler(logging.StreamHandler):
    """A log line printed above any progress bar on the terminal, instead of over it: tqdm clears its
    bars, prints the line and redraws them (a plain stream handler behaves the same without bars)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:
            self.handleError(record)
