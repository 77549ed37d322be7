"""Sweep hostile and careless inputs through the snncc CLI and count how each was handled.

Runs every case of ``tests/security/hostile_cases.py`` (issue 21) in a subprocess, bomb cases
under a 2 GiB address-space cap, and prints one line per case, then: cases tried, handled
cleanly (refused with exit 2 and one line, or accepted when the input is valid), exit-3 count,
crashes and timeouts, and the peak memory of every bomb case.

    .venv/bin/python scripts/hostile_inputs.py [--jobs 2] [--only PATTERN] [--json OUT]

Exit status: 0 when every case was handled cleanly, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests" / "security")]

from hostile import MEMORY_CAP, Run, run_cli  # noqa: E402
from hostile_cases import CASES, Case  # noqa: E402


def clean(case: Case, run: Run) -> bool:
    """Handled as it should be: refused in one line (exit 2), or accepted without a traceback."""
    if case.expect == "refused":
        return run.clean_refusal()
    return (run.returncode in (0, 1) and "Traceback" not in run.stderr
            and "internal error" not in run.stderr)


def run_case(case: Case, root: Path) -> tuple[Case, Run | None, str]:
    folder = root / f"case{CASES.index(case):03d}"
    folder.mkdir()
    try:
        args = case.build(folder)
    except Exception as error:  # noqa: BLE001 - a broken builder is reported, not fatal
        return case, None, f"builder failed: {type(error).__name__}: {error}"
    run = run_cli(*args, cwd=folder, cap=MEMORY_CAP if case.bomb else None,
                  timeout=case.timeout)
    return case, run, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--json", type=Path, help="write every case's result here")
    options = parser.parse_args()
    chosen = [case for case in CASES if options.only.lower() in case.name.lower()]
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="snncc-hostile-") as scratch, \
            ThreadPoolExecutor(max_workers=options.jobs) as pool:
        for case, run, problem in pool.map(lambda c: run_case(c, Path(scratch)), chosen):
            ok = run is not None and clean(case, run)
            results.append((case, run, ok, problem))
            status = "ok  " if ok else "FAIL"
            detail = problem or (f"rc {run.returncode}{' timeout' if run.timed_out else ''} "
                                 f"{run.seconds:5.1f} s {run.peak_rss_mb:6.0f} MB | "
                                 + (run.error_lines[-1][:110] if run.error_lines else
                                    run.stdout.strip().splitlines()[-1][:110]
                                    if run.stdout.strip() else ""))
            print(f"{status} [{case.defect:>2}] {case.name:<48} {detail}", flush=True)
    ran = [(c, r, ok) for c, r, ok, _ in results if r is not None]
    exit3 = sum(1 for _, r, _ in ran if r.returncode == 3)
    crashes = sum(1 for _, r, _ in ran if r.returncode < 0 or r.returncode > 3 or r.timed_out)
    handled = sum(1 for _, _, ok in ran if ok)
    print()
    print(f"cases tried: {len(results)} ({len([c for c in chosen if c.bomb])} bombs under a "
          f"{MEMORY_CAP >> 30} GiB address-space cap), in {time.perf_counter() - started:.0f} s")
    print(f"handled cleanly: {handled}")
    print(f"exit 3 (internal error): {exit3}")
    print(f"crashes or timeouts: {crashes}")
    print(f"builders failed: {sum(1 for *_, problem in results if problem)}")
    bombs = [(c, r) for c, r, _ in ran if c.bomb]
    if bombs:
        peaks = [r.peak_rss_mb for _, r in bombs]
        print(f"bomb peak memory: max {max(peaks):.0f} MB, median "
              f"{sorted(peaks)[len(peaks) // 2]:.0f} MB over {len(bombs)} bombs")
        for case, run in bombs:
            print(f"  {case.name:<48} rc {run.returncode}  {run.peak_rss_mb:6.0f} MB  "
                  f"{run.seconds:5.1f} s")
    if options.json:
        options.json.write_text(json.dumps([
            {"name": c.name, "defect": c.defect, "expect": c.expect, "bomb": c.bomb,
             "clean": ok, "problem": problem,
             **({} if r is None else {"returncode": r.returncode, "seconds": r.seconds,
                                      "peak_rss_mb": r.peak_rss_mb, "timed_out": r.timed_out,
                                      "stderr": r.stderr[-500:]})}
            for c, r, ok, problem in results], indent=1))
    return 0 if handled == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
