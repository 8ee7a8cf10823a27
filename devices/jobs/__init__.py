"""The device-host side of a job, installable without the server (``latbench[runner]``): the job
kinds and their task functions (``kinds``), the port a task talks through (``port``), the one
function that runs a task (``execute``), the host lock, the HTTP port and the remote runner
process (``agent``). Imports nothing heavy: no torch, no SQLAlchemy, no FastAPI."""
