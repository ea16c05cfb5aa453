"""Times the full Fig. 2 and Fig. 3 sweeps of `sparse_keras.theory` (target: < 2 min together).

Run from the repository root:

    python benchmarks/theory_sweeps.py [--trials 1000000] [--out-dir DIR] [--quick]

It prints the wall time of each sweep (exact/estimated curves plus every Monte-Carlo
point) and of the plots, the process CPU time (the code is single-threaded, so on a
busy machine wall time exceeds it), and, with `--out-dir`, saves the two figures there.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from sparse_keras import theory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1_000_000, help="simulated vectors per point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", help="also save fig2.png and fig3.png here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: the first 3 vector lengths and 2 scales only (not the figures' timing)",
    )
    args = parser.parse_args(argv)
    fig2_args, fig3_args = {}, {}
    if args.quick:
        fig2_args = {"n_values": theory.FIGURE2_N_VALUES[:3]}
        fig3_args = {
            "n_values": theory.FIGURE3_N_VALUES[:3],
            "scales": theory.FIGURE3_SCALES[:2],
            "scale_a_values": theory.FIGURE3_SCALE_A_VALUES[:2],
        }

    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, trials/point = {args.trials:,}"
    )
    cpu_start = time.process_time()
    start = time.perf_counter()
    fig2_sweep = theory.figure2_sweep(
        trials=args.trials, seed=args.seed, progress=False, **fig2_args
    )
    fig2_s = time.perf_counter() - start
    points2 = sum(e is not None for row in fig2_sweep.simulated for e in row)
    print(f"Fig. 2 sweep: {points2} points in {fig2_s:.1f} s")

    start = time.perf_counter()
    fig3_sweeps = theory.figure3_sweeps(
        trials=args.trials, seed=args.seed, progress=False, **fig3_args
    )
    fig3_s = time.perf_counter() - start
    points3 = sum(e is not None for sweep in fig3_sweeps for row in sweep.simulated for e in row)
    print(f"Fig. 3 sweeps: {points3} points in {fig3_s:.1f} s")

    start = time.perf_counter()
    figures = {"fig2.png": theory.figure2(fig2_sweep), "fig3.png": theory.figure3(fig3_sweeps)}
    if args.out_dir:
        for name, fig in figures.items():
            theory.save_figure(fig, os.path.join(args.out_dir, name))
    plot_s = time.perf_counter() - start
    print(f"plots: {plot_s:.1f} s")
    cpu_s = time.process_time() - cpu_start
    print(
        f"total: {fig2_s + fig3_s + plot_s:.1f} s wall (sweeps {fig2_s + fig3_s:.1f} s), {cpu_s:.1f} s CPU"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
