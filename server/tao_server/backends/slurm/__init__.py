"""The Slurm backend (backend.py) and its parts: batch scripts (script.py), the reading of Slurm's
answers about jobs, with the poller that decides what to ask (state.py) and the one thread that
asks (monitor.py), how a job's end reads (ends.py), the sweep of a failed node (sweep.py), and the
commands run here or over SSH (commands.py). Only backend.py and commands.py run anything."""
