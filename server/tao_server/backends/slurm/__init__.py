"""The Slurm backend's pure parts: batch scripts (script.py) and the reading of Slurm's answers
about jobs, with the poller that decides what to ask (state.py). Nothing here runs a command:
the backend hands in a function that does, and a clock."""
