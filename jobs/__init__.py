"""RQ jobs: thin functions taking ids, run inside an app context by the
worker entry point (``jobs.worker``). The schedule is ``jobs.schedule``."""
