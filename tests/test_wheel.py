"""A regular install works: the wheel carries every module, config group and weight file, and from a fresh venv
outside the repo every preset and config option composes and a tiny loop writes its table and figures.

Every other test runs against the editable install, which reads conf/ from the repo and so cannot see what a wheel
leaves out (a wheel without conf/curation/ failed the default run with "Could not find 'curation/none'").
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
# What the build reads besides the package sources (pyproject.toml names README.md as the long description).
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md")


def source_files() -> list[str]:
    """The package's source files as the work tree holds them: the files under madloop/ and conf/ that git does
    not ignore, committed or not (a walk of both folders, less caches, where git cannot list them)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "madloop", "conf"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        names = [n for n in out.split("\0") if n and (REPO / n).is_file()]  # less files deleted but not committed
    except (OSError, subprocess.CalledProcessError):
        names = []
    if not names:
        names = [
            p.relative_to(REPO).as_posix()
            for folder in ("madloop", "conf")
            for p in (REPO / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    return sorted(names)


def installed_name(source: str) -> str:
    """Where a source file lands in the wheel: conf/ ships as the package madloop.conf."""
    return "madloop/" + source if source.startswith("conf/") else source


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the source files (a build in the repo would leave build/ behind)."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in [*BUILD_FILES, *source_files()]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w"]
    subprocess.run([*cmd, str(dist), str(src)], check=True, capture_output=True, timeout=300)
    (built,) = dist.glob("madloop-*.whl")
    return built


def test_the_wheel_carries_every_source_file_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as z:
        shipped = {n for n in z.namelist() if ".dist-info/" not in n}
    expected = {installed_name(n) for n in source_files()}
    # the defaults' groups and the bundled weights, named so that an empty source listing cannot pass
    for must in ("madloop/conf/config.yaml", "madloop/conf/curation/none.yaml", "madloop/run.py"):
        assert must in expected
    assert any(n.startswith("madloop/weights/") and n.endswith(".msgpack") for n in expected)
    assert sorted(expected - shipped) == [], "missing from the wheel"
    assert sorted(shipped - expected) == [], "in the wheel but not a source file"


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the repo with the wheel installed; it sees this venv's third-party packages through a
    .pth path line (no download of JAX), but neither the repo nor the editable install (a path line only adds a
    folder to sys.path: the editable install's own .pth hook in that folder does not run)."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_test_venv_packages.pth").write_text("".join(f"{p}\n" for p in ours))
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=300)
    return root


def run_in(venv: Path, args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the venv's python from ``cwd`` (outside the repo) with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(venv / "bin" / "python"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


# Runs inside the fresh venv: where madloop comes from, then every option of every config group and every preset
# composed and validated through the installed package (one process: Hydra's compose API, as the CLI uses).
COMPOSE_ALL = textwrap.dedent(
    """
    import json, sys
    from importlib.resources import files
    from pathlib import Path

    import numpy as np

    import madloop

    conf = files("madloop.conf")
    groups = {
        g.name: sorted(p.name[:-5] for p in g.iterdir() if p.name.endswith(".yaml"))
        for g in conf.iterdir() if g.is_dir() and g.name != "__pycache__"
    }
    mnist = Path(sys.argv[1])  # data=mnist reads local files: a small mnist.npz
    x, y = np.zeros((256, 28, 28), np.uint8), np.arange(256) % 10
    np.savez(mnist / "mnist.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    cifar = mnist / "cifar"  # data=cifar10 too: 5 x 52 training and 20 test records of the binary batches
    cifar.mkdir()
    for name, n in [(f"data_batch_{i}.bin", 52) for i in range(1, 6)] + [("test_batch.bin", 20)]:
        (cifar / name).write_bytes((np.arange(n, dtype=np.uint8) % 10)[:, None].repeat(3073, 1).tobytes())
    extra = {
        "guidance=sims": ["model=diffusion"],  # SIMS guides a diffusion sampler
        "data=mnist": [f"data.path={mnist}", "data.heldout_n=20"],
        "data=cifar10": [f"data.path={cifar}", "data.heldout_n=20"],
        "model=linear": ["data=linear"],  # the supervised family regresses a regression truth's label
    }
    (mnist / "text.txt").write_text("the cat sat on the mat. " * 40, encoding="utf-8")  # data=text: a local file
    extra["data=text"] = ["model=ngram", f"data.path={mnist / 'text.txt'}", "data.length=16"]
    extra |= {f"data={name}": ["model=ngram"] for name in ("zipf", "markov")}  # token rows need a token model
    extra |= {f"model={name}": ["data=markov"] for name in ("categorical", "ngram", "transformer")}
    composed = []
    for group, names in groups.items():
        for name in names:
            override = f"{group}={name}"
            madloop.compose([*extra.get(override, []), override])
            composed.append(override)
    print(json.dumps({"file": madloop.__file__, "groups": groups, "composed": composed}))
    """
)


def test_every_preset_and_option_composes_from_the_installed_package(venv, tmp_path):
    import json

    proc = run_in(venv, ["-c", COMPOSE_ALL, str(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # the installed package, not the repo or the editable install
    site = run_in(venv, ["-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp_path)
    assert Path(found["file"]).resolve().parent == (Path(site.stdout.strip()) / "madloop").resolve()
    # every group and option the repo's conf/ holds, experiments included, was found in the wheel and composed
    repo_groups = {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in (REPO / "conf").iterdir() if g.is_dir()}
    repo_groups = {g: names for g, names in repo_groups.items() if names}
    assert found["groups"] == repo_groups
    assert "experiment" in found["groups"] and "curation" in found["groups"]
    assert len(found["composed"]) == sum(map(len, repo_groups.values()))


def test_a_tiny_loop_runs_from_the_installed_package(venv, tmp_path):
    out = tmp_path / "out"
    args = ["-m", "madloop.run", "loop.generations=2", "loop.seeds=2", "loop.chunk=2", "regime.n_real=48"]
    args += ["regime.n_synth=48", "eval.n=64", "eval.snapshot_n=16", "plots=true", f"hydra.run.dir={out}"]
    proc = run_in(venv, args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(out / "metrics.csv")
    assert sorted(set(zip(table.seed, table.generation, strict=True))) == [(s, g) for s in (0, 1) for g in (0, 1, 2)]
    for name in ("metrics.png", "samples.png", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
