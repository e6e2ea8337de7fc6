"""Hyperparameter sweeps: Optuna trials run as ordinary jobs, pruned from the KPIs of their status files.

    sweep_file.py      a sweep file read and checked whole (file, line, key): SweepSpec
    trial_args.py      a trial's arguments (${trial.dir}, ${params.NAME}, KEY=VALUE overrides) and its command line
    spec_copies.py     a trial's copy of the spec template, read and written as the sweep's owner
    study.py           a sweep's Optuna study in its journal file (the only importer of optuna)
    driver.py          SweepDriver: one thread that reports epochs, prunes, ends and starts trials
    sweep_store.py     SweepStore: the sweep table
    sweep_models.py    the sweep table and the API's sweep schemas
    sweep_service.py   SweepService: start, list, show and stop sweeps (what the routes call)

Modules here import the job core (`tao_server.jobs`: a trial is a job, submitted through
JobService), `tao_server.access`, `errors` and `models`; never a backend or the web framework.
"""
