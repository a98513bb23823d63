# Sourced by the device scripts (device_check.sh, issue17_gpu.sh) from the repository root, with PY set: makes
# madloop importable on the GPU machine, which has no network. It installs the pure-Python wheels of .whl/
# (bash benchmarks/device_check.sh prepare) into /tmp/site and puts this tree on PYTHONPATH. madloop is not
# installed there, and its config tree (conf/) ships as madloop.conf only in an install, so this (device-side)
# copy links it into place when madloop.conf cannot be imported.
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
$PY -c "import madloop.conf" 2>/dev/null || ln -sfn ../conf madloop/conf
