"""The SIMS self-consuming loop with an EDM model (experiment=sims_edm): generation 0 against the last, per omega.

Usage: python experiments/sims_edm.py [--csv docs/data/sims_edm.csv] [overrides...]

omega is swept inside one program (sweep.guidance.omega); omega = 0 is the standard loop bit for bit, so for each
seed the standard and the SIMS loop share their real data and their generation-0 base model.
"""

from __future__ import annotations

import argparse
import time

import madloop
from madloop.report import summarize

SHOW = ("sw2", "mmd_local", "fd", "precision", "recall", "coverage", "modes", "hq")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default="docs/data/sims_edm.csv")
    a, rest = p.parse_known_args()
    t0 = time.perf_counter()
    table = madloop.run_table(["experiment=sims_edm", *rest])
    print(f"experiment=sims_edm: {time.perf_counter() - t0:.1f} s (compilation included)")
    table.to_csv(a.csv, index=False)
    g_last = int(table["generation"].max())
    print(f"generation 0 -> {g_last}: mean [95% CI] over {table['seed'].nunique()} seeds")
    print("| omega | " + " | ".join(SHOW) + " |")
    print("|---|" + "---|" * len(SHOW))
    for omega, t in table.groupby("omega"):
        cells = []
        for m in SHOW:
            s = summarize(t, m)
            cells.append(f"{s['mean'][0]:.3g} → {s['mean'][g_last]:.3g} [{s['lo'][g_last]:.3g}, {s['hi'][g_last]:.3g}]")
        print(f"| {omega:g} | " + " | ".join(cells) + " |")
    # The SIMS loop's drift minus the standard loop's, paired per seed (each omega > 0 against omega = 0).
    drift = table[table["generation"].isin([0, g_last])].pivot_table(index=["omega", "seed"], columns="generation")
    for omega in sorted(table["omega"].unique())[1:]:
        cells = []
        for m in SHOW:
            d = (drift[m][g_last] - drift[m][0]).unstack("omega")
            s = summarize((d[omega] - d[0.0]).rename(m).reset_index().assign(generation=0), m)
            cells.append(f"{m} {s['mean'][0]:+.3g} [{s['lo'][0]:+.3g}, {s['hi'][0]:+.3g}]")
        print(f"drift(omega={omega:g}) - drift(omega=0), generation 0 -> {g_last}: " + "; ".join(cells))
    print(f"wrote {a.csv}")


if __name__ == "__main__":
    main()
