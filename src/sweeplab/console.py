"""The `sweeplab` console script. A Ctrl-C at any moment ends in one line and exit 130, without a
traceback: while the libraries are imported (the command's own, and torch for `train`) it ends the
process at once (some libraries catch every exception while they import, a KeyboardInterrupt too, and
carry on half set up; one inside torch's import aborts the process; nothing has been written yet);
after that, the command's own handling takes over (`sweeplab.cli`)."""

import os
import signal
import sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    print("sweeplab: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def main() -> None:
    starting = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not ignored (`nohup`, `&`)
    if starting:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    try:
        from sweeplab.cli import main as run
        from sweeplab.cli import preload

        preload(sys.argv[1:])
        if starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        run()
    except KeyboardInterrupt:
        print("sweeplab: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
