"""Executes every notebook in experiments/ offline, so the notebooks never rot.

Each notebook runs top to bottom in a fresh kernel of this interpreter (ipykernel's built-in ``python3`` kernel,
whose ``python`` command jupyter_client replaces with ``sys.executable``), in a temporary working directory so
nothing is written into the repository. The kernel inherits this process's environment, so conftest.py's CPU-only
JAX and XLA optimisation level apply to it too. The notebooks carry their own assertions (closed forms, orderings):
a notebook whose numbers go wrong fails here, not only one that raises.
"""

import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.manager import KernelManager

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
NOTEBOOKS = sorted(EXPERIMENTS.glob("*.ipynb"))
KERNEL = "python3"


def test_the_notebooks_are_found():
    # so that a moved folder or a renamed extension cannot make the parametrized test below vanish silently
    assert len(NOTEBOOKS) >= 3, f"expected at least 3 notebooks in {EXPERIMENTS}, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs before committing"


def test_the_kernel_is_this_interpreter():
    km = KernelManager(kernel_name=KERNEL)
    command = km.format_kernel_cmd()
    assert command[0] == sys.executable, (
        f"the {KERNEL!r} kernelspec ({km.kernel_spec.resource_dir}) runs {command[0]}, not {sys.executable}: "
        "remove the user-level kernelspec that shadows ipykernel's own"
    )


# replace_vs_accumulate, the longest, in the slow tier (the default tier's time budget)
@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=[pytest.mark.slow] * (p.stem == "replace_vs_accumulate")) for p in NOTEBOOKS],
    ids=lambda p: p.stem,
)
def test_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name=KERNEL, resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError (with the cell and its traceback) when a cell fails
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    assert list(tmp_path.iterdir()) == [], "a notebook left files in its working directory"
