"""A job's training progress, from the status file TAO writes into its results dir.

    status_locate.py   where a job's status.json is, as the daemon sees it (the results dir in its arguments, or --status-file)
    status_reader.py   its files read from an offset, bounded, beneath the job's mount (access/beneath.py), never through a link
    status_lines.py    one line of TAO's status file, checked and bounded
    progress_state.py  lines folded into the job's progress (epoch, ETA, KPIs) and its series
    tracker.py         ProgressTracker: the one thread that follows every running job; the runner tells it of starts and ends
    metric_store.py    MetricStore: the series and cursors in the database, bounded and thinned; `sample` for a series sampled over time

Modules here import `tao_server.access`, `errors`, `models`, and from the job core only the
store, the events and path_args; the runner and the service import them, never the other way round.
"""
