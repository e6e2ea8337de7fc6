"""Workflows: several jobs submitted as one (pipeline files), and the pieces a sweep's trials share with them.

    yaml_nodes.py      a workflow file read as YAML nodes: values with their file, line, column and key
    steps.py           a step (one job as a file writes it): read, checked, ${...} filled, submitted for a caller
    pipeline_file.py   a pipeline file checked whole: vars, steps in the order written, an order with no cycle
    pipeline_service.py  PipelineService: run a pipeline file, list, show and stop pipelines (what the routes call)
    pipeline_store.py  the `pipeline` table

Modules here import the job core (`tao_server.jobs`: a step is submitted through JobService),
`tao_server.access` (the caller), `errors` and `models`; the runner knows nothing of them: a
step is an ordinary job with dependencies.
"""
