"""run.sh as the benchmarks call it: one run with its settings in the environment, its output in
reports/<name>.log, its minutes returned; a failed run stops the benchmark with the log named."""
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_logged(settings, name, arguments=""):
    """Minutes `bash run.sh <arguments>` took with `settings` ({variable: value}) added to the
    environment; its stdout and stderr in reports/<name>.log."""
    log = ROOT / "reports" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    began = time.time()
    with open(log, "w") as out:
        done = subprocess.run(["bash", "run.sh", *arguments.split()], cwd=ROOT, env={**os.environ, **settings},
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"error: run.sh failed for {name} (see {log})")
    return (time.time() - began) / 60
