"""The job core: ``submission`` (a request to jobs: quota, coalescing, dispatch), ``steps`` (the
server-side steps: export, claim, complete, fail, requeue), ``transitions`` (the one table of
state changes and the one function applying it) and ``ports`` (what a dispatcher implements).
Routes, dispatchers and the reaper call these and never move a job themselves.

Nothing is imported here: ``service.db`` imports ``transitions`` alone, without the rest."""
