"""Gunicorn configuration of the model API: uvicorn workers, and the hooks that keep multiprocess metrics right.

    gunicorn -c gunicorn.conf.py --bind 127.0.0.1:8000      (what `make api` and the Dockerfile run)

Workers: WEB_CONCURRENCY (default 1). Everything else the API reads is in model_api.settings.
"""

from model_api.artifacts import ModelArtifactError, check_artifacts
from model_api.settings import load_settings

# The master's own metrics (SupervisorMetrics), created in on_starting; None when metrics are off.
supervisor = None

settings = load_settings()  # a bad variable stops the start here, with one line naming it

# BLAS and OpenMP size their thread pools from these when a worker first imports numpy and scikit-learn, for
# every thread of the worker (threadpoolctl in the worker only reaches the thread that calls it). The master
# sets them for its children and imports neither library itself: nothing here may import model_api.models.
raw_env = [f"{name}={settings.blas_threads}" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")]

wsgi_app = "model_api.app:create_gunicorn_app()"
# The maintained uvicorn worker class for gunicorn (uvicorn.workers is deprecated since uvicorn 0.30), whose
# workers, when max_requests recycles them, tell their clients to reconnect rather than reset their connections.
worker_class = "model_api.worker.RecyclingUvicornWorker"
workers = settings.web_concurrency
# No preload: each worker imports the app and loads the models after the fork (BLAS/OpenMP pools are not
# fork-safe); the master imports neither, and keeps only the two counters of SupervisorMetrics.
preload_app = False
# Off by default: each recycled worker leaves its counter files behind, which every scrape then reads. The cure
# for a leak (docs/scenarios/memory-bound.md), with jitter so that the workers do not all recycle at once.
max_requests = settings.max_requests
max_requests_jitter = settings.max_requests_jitter
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
    # Only now that the folder is empty: the counters write their file at once, exposed at zero from the first
    # scrape.
    from model_api.metrics import SupervisorMetrics

    global supervisor
    supervisor = SupervisorMetrics(registry=None)


def child_exit(server, worker):
    """In the master, after a worker exits (or is killed): count it if gunicorn replaces it, with the requests it
    never answered; then drop its live gauges (its counters stay summed)."""
    if not settings.metrics or settings.multiproc_dir is None:
        return
    from prometheus_client import multiprocess

    from model_api.metrics import in_flight_when_dead

    # The worker is already out of server.WORKERS. Gunicorn replaces it when it is now short of workers and still
    # listening; at shutdown (no listeners) and after a scale-down (TTOU lowers num_workers first) it does not.
    replaced = bool(server.LISTENERS) and len(server.WORKERS) < server.num_workers
    if replaced and supervisor is not None:
        supervisor.worker_restarts.inc()
        supervisor.lost_requests.inc(in_flight_when_dead(worker.pid, settings.multiproc_dir))
    multiprocess.mark_process_dead(worker.pid, str(settings.multiproc_dir))
