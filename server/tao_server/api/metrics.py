"""/v1/jobs/{id}/metrics: a job's training series (loss, KPIs, ...) from its status file, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Literal

from fastapi import APIRouter, Response

from tao_server.api.deps import CallerDep, JobServiceDep, ProgressDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.models import JobMetrics

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JsonRoute)
CSV_COLUMNS = ("series", "epoch", "step", "value", "time")


@router.get(
    "/{job_id}/metrics",
    response_model=JobMetrics,
    responses={**responses(404, 422), 200: {"content": {"text/csv": {}}, "description": "The series (CSV with ?format=csv)"}},
)
def job_metrics(
    job_id: str, jobs: JobServiceDep, progress: ProgressDep, caller: CallerDep, format: Literal["json", "csv"] = "json"
) -> Response:
    """Each numeric `graphical` and `kpi` entry of the job's status file as a series named by its key, in the order written.

    Who may read the job may read these. `?format=csv` gives one line per point: series,epoch,step,value,time.
    """
    shown = progress.metrics(jobs.get(job_id, caller))
    if format == "csv":
        return Response(_csv(shown), media_type="text/csv; charset=utf-8")
    return Response(shown.model_dump_json(), media_type="application/json")


def _csv(shown: JobMetrics) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, points in shown.series.items():
        for point in points:
            row = point.model_dump(mode="json")
            writer.writerow([name, _cell(row["epoch"]), _cell(row["step"]), repr(point.value), row["time"]])
    return out.getvalue()


def _cell(value: int | None) -> str:
    return "" if value is None else str(value)
