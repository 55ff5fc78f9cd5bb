"""Run the DAGs folder's `rokt_conversions` in Airflow 3 as `airflow dags test` does,
for tests/test_airflow_example.py: parse the folder (import errors, warnings), then
`dag.test()`; write what Airflow recorded to the JSON file named by argv[1]."""

import json
import sys

from airflow.dag_processing.dagbag import DagBag
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

bag = DagBag()  # AIRFLOW__CORE__DAGS_FOLDER
result: dict[str, object] = {
    "dag_ids": sorted(bag.dag_ids),
    "import_errors": bag.import_errors,
    "warnings": bag.captured_warnings,
}
if "rokt_conversions" in bag.dags:
    run = bag.dags["rokt_conversions"].test()
    with create_session() as session:
        tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        xcom = session.scalars(
            XComModel.get_many(run_id=run.run_id, key="return_value", task_ids="sync_conversions")
        )
        values = [XComModel.deserialize_value(x) for x in xcom]
    result |= {"state": str(run.state), "tasks": tasks, "xcom": values}
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(result, out)
