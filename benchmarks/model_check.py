"""Model-check the planner: ``python -m benchmarks.model_check [--sequences N] [--seed S]``.

Runs N (default 20,000) random configurations with a random event sequence each through the
planner (see tests/planner_model.py) and prints the counts: sequences (how
many planned with fencing on, the others with it off), events, planner
steps, violations. Exits 1 if any rule was broken, printing
the first failing sequence so it can be pinned as a scenario.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.planner_model import RandomDraw, describe_model, run_sequence


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--max-events", type=int, default=25)
    args = ap.parse_args(argv)
    events = steps = bad = fencing = 0
    first = None
    t0 = time.perf_counter()
    for i in range(args.sequences):
        w = run_sequence(RandomDraw(args.seed * 1_000_003 + i), args.max_events)
        events += w.events
        steps += w.steps
        fencing += w.model.fencing
        if w.violations:
            bad += 1
            first = first or (i, w)
    took = time.perf_counter() - t0
    print(f"seed {args.seed}: {args.sequences} sequences ({fencing} with fencing, "
          f"{args.sequences - fencing} without), {events} events, {steps} planner steps "
          f"(each planned twice), {bad} sequences with violations, {took:.1f} s")
    if first is not None:
        i, w = first
        print(f"\nfirst failing sequence (#{i}):\n{describe_model(w.model)}\nevents: "
              f"{' '.join(w.trace)}\n" + "\n".join(w.violations[:10]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
