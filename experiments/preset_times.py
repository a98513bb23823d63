"""Wall time of every ``experiment=`` preset at full size, each in a fresh process, as a markdown table.

Usage: python experiments/preset_times.py [--presets curation mad_gaussian ...] [--timeout 1800]

Each preset runs as ``python -m madloop.run experiment=<name>`` in a temporary output folder, with JAX's
persistent compilation cache turned off (``MADLOOP_COMPILE_CACHE=0``), so the time includes interpreter
start-up, imports, Hydra, compilation, the run and writing the table and figures: what a user waits for on a
first run. The run's own log line gives the loop's time ("done in ... s").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib.resources import files


def presets() -> list[str]:
    """Every preset name under madloop/conf/experiment."""
    folder = files("madloop.conf").joinpath("experiment")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def time_preset(name: str, timeout: float) -> tuple[float, float | None, int]:
    """(wall seconds of the whole process, the loop's seconds from its log or None, exit code)."""
    env = dict(os.environ, MADLOOP_COMPILE_CACHE="0")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "madloop.run", f"experiment={name}", f"hydra.run.dir={out}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        wall = time.perf_counter() - t0
    found = re.findall(r"done in ([0-9.]+) s", proc.stdout + proc.stderr)
    return wall, float(found[-1]) if found else None, proc.returncode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="*", default=None)
    p.add_argument("--timeout", type=float, default=1800)
    a = p.parse_args()
    rows = ["| preset | wall (process) | loop (compile + run) | exit |", "|---|---|---|---|"]
    for name in a.presets or presets():
        wall, loop, code = time_preset(name, a.timeout)
        loop_s = f"{loop:.0f} s" if loop is not None else "–"
        rows.append(f"| `{name}` | {wall:.0f} s | {loop_s} | {code} |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
