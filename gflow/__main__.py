"""`python -m gflow ...` is the `gflow` command; `entry` is the installed `gflow` script.

The command line's modules (numpy, h5py, the app) are imported inside `entry`, so that Ctrl-C
during that second of start-up ends in one line and status 130, like Ctrl-C later, not in a
traceback from the middle of an import. Once the command is over (its files closed, its status
decided), Ctrl-C is ignored: arriving while the interpreter shuts down (atexit hooks, weakref
finalizers), it would print a traceback from there and change nothing else.
"""
import signal
import sys


def entry() -> int:
    try:
        from gflow.app.cli import main
    except KeyboardInterrupt:
        print("gflow: interrupted while starting; nothing was written", file=sys.stderr)
        return 130
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    sys.exit(entry())
