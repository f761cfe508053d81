"""The cluster of a multi-worker run (``TF_CONFIG``), this process's role and where it writes.

``TF_CONFIG`` is the JSON every cluster manager (Kubeflow's TFJob, Vertex AI custom training)
or a person sets on each process of the job; the same ``cluster`` on every process, a
different ``task``::

    {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"]},
     "task": {"type": "worker", "index": 0}}

(tensorflow.org/guide/distributed_training, "Setting up the TF_CONFIG environment variable").
``MultiWorkerMirroredStrategy`` trains on every ``chief`` and ``worker`` task; without a
``chief`` job, worker 0 is the chief. Other keys (Vertex AI's ``environment``, ``job``) are
ignored. The chief writes ``model_dir``; every other worker writes its required copies
(checkpoints: saving runs collective ops on every worker) to a private temporary directory
that :func:`write_dir` removes; every worker resumes from the chief's checkpoints.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

TRAINING_JOBS = ("chief", "worker")
_UNSUPPORTED_JOBS = {
    "ps": "parameter servers are not used by MultiWorkerMirroredStrategy",
    "evaluator": "evaluator tasks are not supported (evaluate the chief's checkpoints with "
                 "tf_defocus.evaluate)",
    "master": "'master' is the legacy name of 'chief'; use 'chief'",
}


class TFConfigError(ValueError):
    """A missing or malformed ``TF_CONFIG`` (one-line message)."""


@dataclasses.dataclass(frozen=True)
class Role:
    """This process in the cluster.

    jobs: job name -> tuple of "host:port" addresses (only ``chief`` / ``worker``).
    task_type / task_index: this process's task.
    """
    jobs: dict
    task_type: str
    task_index: int

    @property
    def num_workers(self):
        """Training processes in the cluster (chief included)."""
        return sum(len(self.jobs.get(j, ())) for j in TRAINING_JOBS)

    @property
    def worker_index(self):
        """0 .. num_workers - 1; the chief is 0."""
        if self.task_type == "chief":
            return 0
        return self.task_index + len(self.jobs.get("chief", ()))

    @property
    def is_chief(self):
        return self.worker_index == 0

    @property
    def name(self):
        """``chief``, ``worker 0 (chief)`` (no chief job) or ``worker 1``."""
        if self.task_type == "chief":
            return "chief"
        return f"worker {self.task_index}" + (" (chief)" if self.is_chief else "")


def _fail(message):
    raise TFConfigError(f"TF_CONFIG: {message}")


def parse_tf_config(text):
    """``Role`` from the text of ``TF_CONFIG``; raises ``TFConfigError`` naming the problem."""
    if text is None or not text.strip():
        raise TFConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                            "(cluster and task; see docs/MULTI_WORKER.md)")
    try:
        config = json.loads(text)
    except ValueError as e:
        _fail(f"not valid JSON ({e})")
    if not isinstance(config, dict):
        _fail(f"must be a JSON object with 'cluster' and 'task', got {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        _fail("'cluster' must be a non-empty object mapping job names to address lists")
    if not isinstance(task, dict):
        _fail("'task' must be an object with 'type' and 'index'")
    jobs, seen = {}, set()
    for job, addresses in cluster.items():
        if job in _UNSUPPORTED_JOBS:
            _fail(f"job '{job}': {_UNSUPPORTED_JOBS[job]}")
        if job not in TRAINING_JOBS:
            _fail(f"unknown job '{job}' in 'cluster' (expected {' / '.join(TRAINING_JOBS)})")
        if not isinstance(addresses, list) or not addresses:
            _fail(f"cluster['{job}'] must be a non-empty list of 'host:port' strings")
        for a in addresses:
            host, _, port = a.rpartition(":") if isinstance(a, str) else ("", "", "")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                _fail(f"cluster['{job}']: {a!r} is not a 'host:port' address")
            if a in seen:
                _fail(f"address {a} appears twice in 'cluster'")
            seen.add(a)
        jobs[job] = tuple(addresses)
    if len(jobs.get("chief", ())) > 1:
        _fail(f"at most one 'chief' task, got {len(jobs['chief'])}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type in _UNSUPPORTED_JOBS:
        _fail(f"task type '{task_type}': {_UNSUPPORTED_JOBS[task_type]}")
    if task_type not in jobs:
        _fail(f"task type {task_type!r} is not a job of 'cluster' ({', '.join(sorted(jobs))})")
    if isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < len(jobs[task_type]):
        _fail(f"task index {index!r} is not in 0..{len(jobs[task_type]) - 1} for job "
              f"'{task_type}'")
    return Role(jobs=jobs, task_type=task_type, task_index=index)


def role_from_environ(environ=None):
    """``Role`` of this process from ``$TF_CONFIG``."""
    return parse_tf_config((os.environ if environ is None else environ).get("TF_CONFIG"))


def private_dir(model_dir, role):
    """This non-chief worker's temporary directory for ``model_dir`` (local, outside it)."""
    key = hashlib.sha256(str(Path(model_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tf_defocus_{role.task_type}{role.task_index}_{key}"


@contextlib.contextmanager
def write_dir(model_dir, role):
    """Directory this process writes checkpoints, logs and the model to: ``model_dir`` for a
    single process or the chief; for another worker its ``private_dir``, emptied on entry
    (leftovers of a killed run) and removed on exit."""
    if role is None or role.is_chief:
        yield Path(model_dir)
        return
    path = private_dir(model_dir, role)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def free_local_ports(n):
    """``n`` distinct TCP ports free on 127.0.0.1 now (for a local TF_CONFIG of n workers; another
    process may take one before the workers bind it)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports
