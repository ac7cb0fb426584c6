"""The store client against a fresh embedded store opened by several processes at once."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

OPEN_AND_LOG = """
import sys
from alignrank.tracking.client import StoreClient
client = StoreClient(sys.argv[1])
print("run", client.create_run(experiment="concurrent", run_name=sys.argv[2]))
"""


def test_processes_creating_the_sqlite_store_at_once_all_succeed(tmp_path):
    # Without the schema lock, MLflow's table creation races ("table _alembic_tmp_... already exists"), leaving
    # a store no later run can use: these 6 processes failed in 3 of 3 tries without it.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG, uri, f"r{i}"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.startswith("run "), err[-500:]
    from alignrank.tracking.client import StoreClient

    client = StoreClient(uri)
    runs = client.mlflow.search_runs([client.experiment_id("concurrent")])
    assert sorted(r.info.run_name for r in runs) == [f"r{i}" for i in range(6)]
