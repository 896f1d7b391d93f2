"""Gunicorn configuration of the model API: uvicorn workers, and the hooks that keep multiprocess metrics right.

    gunicorn -c gunicorn.conf.py --bind 127.0.0.1:8000      (what `make api` and the Dockerfile run)

Workers: WEB_CONCURRENCY (default 1). Everything else the API reads is in model_api.settings.
"""

from model_api.artifacts import ModelArtifactError, check_artifacts
from model_api.settings import load_settings

settings = load_settings()  # a bad variable stops the start here, with one line naming it

# BLAS and OpenMP size their thread pools from these when a worker first imports numpy and scikit-learn, for
# every thread of the worker (threadpoolctl in the worker only reaches the thread that calls it). The master
# sets them for its children and imports neither library itself: nothing here may import model_api.models.
raw_env = [f"{name}={settings.blas_threads}" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")]

wsgi_app = "model_api.app:create_gunicorn_app()"
# The maintained uvicorn worker class for gunicorn (uvicorn.workers is deprecated since uvicorn 0.30).
worker_class = "uvicorn_worker.UvicornWorker"
workers = settings.web_concurrency
# No preload: each worker imports the app and loads the models after the fork (BLAS/OpenMP pools are not
# fork-safe), and the master never creates metric files of its own.
preload_app = False
# Recycling workers would leave their metric files behind and slow every scrape; keep them.
max_requests = 0
# Locust keeps connections open between requests; do not make it reconnect after gunicorn's 2 s default.
keepalive = 5
# In-flight requests get this long to finish on SIGTERM; compose's stop_grace_period must be longer.
graceful_timeout = 30
timeout = 60
accesslog = None
errorlog = "-"
loglevel = "info"
proc_name = "model-api"
# Gunicorn 25+ opens a control socket under $HOME; the lab does not use it, and $HOME may not be writable.
control_socket_disable = True


def on_starting(server):
    """In the master, before any worker exists: check the artifacts, and start metrics from an empty folder."""
    try:
        metadata = check_artifacts(settings.model_dir)
    except ModelArtifactError as error:
        server.log.error("cannot start the model API: %s", error)
        raise SystemExit(1) from None
    server.log.info(
        "models in %s, trained with scikit-learn %s, served by %s",
        settings.model_dir,
        metadata["sklearn_version"],
        settings.model_runtime,
    )
    if not settings.metrics:
        return
    if settings.multiproc_dir is None:
        server.log.error("set PROMETHEUS_MULTIPROC_DIR to an empty folder (or LAB_METRICS=false) to run under gunicorn")
        raise SystemExit(1)
    # Files left by an earlier run would be summed into this one's counters and revive dead workers' gauges.
    # Only prometheus-client's own files are removed, whatever else the folder holds.
    settings.multiproc_dir.mkdir(parents=True, exist_ok=True)
    for stale in settings.multiproc_dir.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """In the master, after a worker exits (or is killed): drop its live gauges; its counters stay summed."""
    if settings.metrics and settings.multiproc_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, str(settings.multiproc_dir))
