"""Run one scenario from the command line: ``python -m tests.scenarios [--seed N] [--scale X]``.

``make soak`` runs it with ``--scale 10`` (ten times the gate's faults and kills). The report
is printed; the exit status is 0 only when every required result holds.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
from pathlib import Path

from tests.scenarios.report import render, verdicts
from tests.scenarios.scenario import Scenario, Size


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, play, print the report; 1 when a required result failed."""
    parser = argparse.ArgumentParser(prog="python -m tests.scenarios", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--scale", type=float, default=1.0, help="size relative to the make-test gate")
    parser.add_argument("--faults", type=int, help="request faults to inject (overrides --scale)")
    parser.add_argument("--kills", type=int, help="SIGKILLs of the daemon (overrides --scale)")
    parser.add_argument(
        "--instances", type=int, default=1, help="daemons sharing a PostgreSQL store (default: one on SQLite)"
    )
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (daemon log, store)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    size = Size.scaled(args.scale, instances=args.instances)
    if args.faults is not None or args.kills is not None:
        size = Size(
            args.faults if args.faults is not None else size.faults,
            args.kills if args.kills is not None else size.kills,
            size.incidents,
            size.max_seconds,
            size.instances,
        )
    print(
        f"scenario seed {seed}: {size.faults} faults, {size.kills} kills, {size.incidents} incidents, "
        f"{size.instances} daemon(s)",
        flush=True,
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        outcome = Scenario(args.keep, seed, size, keep_journals=True).play()
    else:
        with tempfile.TemporaryDirectory(prefix="mim-scenario-") as folder:
            outcome = Scenario(Path(folder), seed, size).play()
    print(render(outcome), flush=True)
    return 0 if all(verdicts(outcome).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
