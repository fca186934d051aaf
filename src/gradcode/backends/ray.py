"""The ``ray`` backend: coded training on a Ray cluster (one actor per worker).

Worker i is an async Ray actor (:class:`~gradcode.backends._ray_actor.GradientWorker`)
that loads the partitions it holds (the support of row i of B) in its constructor, so an
actor that Ray restarts rebuilds itself and rejoins. Each round the master

1. puts the parameters in the object store once (``ray.put``, in the problem's dtype:
   float32 for torch/JAX models, float64 otherwise) and sends the reference to
   every live worker together with its injected delay for that round,
2. streams the answers with ``ray.wait(..., num_returns=..., timeout=...)`` until the
   round's deadline (``policy_state.deadline``) or until no live worker is left,
3. yields each answer tagged with its round (late or stale answers are dropped),
4. cancels the rest of the round (``ray.cancel``); the delay is an ``asyncio.sleep`` in
   the actor, so cancelling interrupts it at once.

A worker whose actor or node dies is a straggler, never a hang: without restarts it is a
permanent straggler; with ``max_restarts > 0`` Ray rebuilds the actor (on another node if
its node is gone) and it answers again in a later round.

Ray is imported lazily (never at ``import gradcode``); ``pip install gradcode[ray]``.
See ``docs/ray.md`` for running on a real cluster.

Example:
    >>> import gradcode as gc                                   # doctest: +SKIP
    >>> backend = gc.backends.get_backend("ray", num_cpus=2)    # doctest: +SKIP
    >>> history = gc.training.train(problem, scheme, rounds=10, backend=backend)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.validate import check_int, check_real
from ..models.stragglers import as_delay_model
from ._ray_actor import GradientWorker
from .base import (
    DEFAULT_ROUND_TIMEOUT,
    Event,
    HostBase,
    RoundInfo,
    WorkersLostError,
    bad_result,
    check_round_timeout,
    round_delays,
)
from .tasks import CodedGradientTask, wire_dtype

__all__ = ["RayBackend", "connect", "parse_address", "probe"]

_ADDRESS_RE = re.compile(r"^(?P<scheme>ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)"
                         r":(?P<port>\d{1,5})$")
_MAX_PROBE_S = 30.0
_LOOPBACK = "127.0.0.1"
# Ray binds every server of a node to the node's IP; it takes the loopback address only
# when this switch (meant for single-machine Windows/macOS) is off. Set for the processes
# of a private local cluster (they inherit it) and for the driver during ray.init.
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_CPU_GRANULARITY = 1e-4          # Ray's resource granularity
_PLACEMENTS = ("spread", "default")
_MIN_OBJECT_STORE = 75 * 1024 * 1024      # Ray's minimum object store size


# ---------------------------------------------------------------------------- addresses
def parse_address(address: Any) -> tuple[str, str, int] | None:
    """Check a Ray address; return ``(scheme, host, port)`` or ``None`` for local/auto.

    Args:
        address: ``"local"`` (start a one-machine cluster in this process), ``"auto"``
            (the cluster started by ``ray start`` on this machine), ``"host:port"`` (the
            head node's GCS, port 6379 by default) or ``"ray://host:port"`` (Ray Client,
            port 10001 by default).

    Returns:
        ``None`` for ``"local"``/``"auto"``, else ``("gcs" | "ray", host, port)``.

    Raises:
        TypeError: ``address`` is not a string.
        ValueError: it is none of the forms above, or the port is not in [1, 65535].

    Example:
        >>> parse_address("10.0.0.5:6379")
        ('gcs', '10.0.0.5', 6379)
        >>> parse_address("local") is None
        True
    """
    if not isinstance(address, str):
        raise TypeError(f"ray backend: address must be a str ('local', 'auto', 'host:port' or "
                        f"'ray://host:port'), got {address!r} ({type(address).__name__})")
    if address in ("local", "auto"):
        return None
    m = _ADDRESS_RE.match(address.strip())
    if m is None:
        raise ValueError(f"ray backend: address={address!r} must be 'local', 'auto', "
                         f"'host:port' or 'ray://host:port'")
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        raise ValueError(f"ray backend: address={address!r} has port {port}, which must lie "
                         f"in [1, 65535]")
    host = m.group("host").strip("[]")
    return ("ray" if m.group("scheme") else "gcs"), host, port


def probe(address: str, timeout: float = 10.0) -> None:
    """Check within ``timeout`` seconds that a Ray cluster answers at ``address``.

    ``ray.init`` on an address nobody answers can retry for minutes; this check bounds
    it: a TCP connection (refused or unreachable fails at once), then for a GCS address a
    gRPC ``GetClusterId`` call that a Ray head answers (or refuses for a missing
    authentication token, which still proves it is a Ray head). Anything else (a timeout,
    a proxy or an unrelated server on that port) is an error.

    Args:
        address: ``"host:port"`` or ``"ray://host:port"``.
        timeout: seconds for the whole check, in (0, 30].

    Raises:
        ConnectionError: nothing that looks like a Ray cluster answers at ``address``;
            the message names the address, what went wrong and how to start a cluster.
        ValueError: malformed address or timeout.

    Example:
        >>> probe("127.0.0.1:1", timeout=2)      # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ConnectionError: ray backend: no Ray cluster at 127.0.0.1:1 ...
    """
    parsed = parse_address(address)
    if parsed is None:
        return
    timeout = _check_real("timeout", timeout, low=0.0, high=_MAX_PROBE_S, low_open=True)
    scheme, host, port = parsed
    hint = ("start one with `ray start --head --port=6379` on the head node (see "
            "docs/ray.md), or pass address='local' for a one-machine cluster")
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise ConnectionError(f"ray backend: no Ray cluster at {address}: cannot open a TCP "
                              f"connection to {host}:{port} within {timeout:g} s ({err}); "
                              f"{hint}") from None
    if scheme != "gcs":
        return
    left = max(timeout - (time.monotonic() - t0), 0.5)
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=left)
        except grpc.RpcError as err:
            code = err.code()
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return                      # a Ray head that wants a token: reachable
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                why = f"no answer within {timeout:g} s"
            else:
                why = f"the server there is not a Ray head ({code.name}: {err.details()})"
            raise ConnectionError(f"ray backend: no Ray cluster at {address}: {why}; "
                                  f"{hint}") from None
    finally:
        channel.close()


# ---------------------------------------------------------------------------- connect
def connect(address: str = "local", *, num_cpus: int | None = None,
            object_store_memory: int | None = None, probe_timeout: float = 10.0,
            quiet: bool = True, **init_options: Any) -> bool:
    """Connect this process to Ray (quietly), unless it already is.

    Args:
        address: ``"local"`` starts a one-machine cluster owned by this process;
            ``"auto"`` joins the cluster ``ray start`` made on this machine;
            ``"host:port"`` / ``"ray://host:port"`` join a remote cluster, after
            :func:`probe` has checked it answers (so an unreachable address fails within
            ``probe_timeout`` seconds instead of hanging).
        num_cpus: CPUs of the local cluster (``address="local"`` only), >= 1; default:
            all of this machine's.
        object_store_memory: bytes of the local cluster's object store (local only).
        probe_timeout: seconds allowed for reaching a remote cluster, in (0, 30].
        quiet: no dashboard, no usage statistics, Ray's own logging at ERROR, worker
            output not forwarded to this process.
        **init_options: passed on to ``ray.init`` (they override the quiet defaults).
            The private cluster of ``address="local"`` listens on 127.0.0.1 only (GCS,
            raylet, object manager, agents: nothing is reachable from another machine);
            ``_node_ip_address="10.0.0.5"`` binds it to that address instead.

    Returns:
        True when this call started or joined Ray (the caller should ``ray.shutdown()``
        when done), False when Ray was already initialised by someone else.

    Raises:
        TypeError / ValueError: a bad argument (named in the message).
        ConnectionError: the cluster at ``address`` cannot be reached.
        ImportError: Ray is not installed (``pip install gradcode[ray]``).

    Example:
        >>> from gradcode.backends.ray import connect       # doctest: +SKIP
        >>> connect("local", num_cpus=2)                     # doctest: +SKIP
        True
    """
    parsed = parse_address(address)
    if num_cpus is not None:
        num_cpus = _check_int("num_cpus", num_cpus, low=1)
    if object_store_memory is not None:
        object_store_memory = _check_int("object_store_memory", object_store_memory,
                                         low=_MIN_OBJECT_STORE)
    probe_timeout = _check_real("probe_timeout", probe_timeout, low=0.0, high=_MAX_PROBE_S,
                                low_open=True)
    if address != "local" and (num_cpus is not None or object_store_memory is not None):
        raise ValueError(f"ray backend: num_cpus and object_store_memory size a local cluster "
                         f"and must be None when joining address={address!r} (set them with "
                         f"`ray start --num-cpus=... --object-store-memory=...` on each node)")
    ray = _import_ray()
    if ray.is_initialized():
        return False
    if quiet:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if parsed is not None:
        probe(address, probe_timeout)
    options: dict[str, Any] = {}
    if quiet:
        options.update(include_dashboard=False, log_to_driver=False,
                       logging_level=logging.ERROR, configure_logging=True)
    if address != "local":
        options.pop("include_dashboard", None)      # only meaningful when starting a cluster
    if num_cpus is not None:
        options["num_cpus"] = num_cpus
    if object_store_memory is not None:
        options["object_store_memory"] = object_store_memory
    options.update(init_options)
    loopback = address == "local" and "_node_ip_address" not in options
    if loopback:
        options["_node_ip_address"] = _LOOPBACK
    try:
        with _loopback_only(loopback), _keep_sigterm_handler():
            ray.init(address=address, **options)
    except ConnectionError as err:
        raise ConnectionError(f"ray backend: could not join the Ray cluster at "
                              f"{address!r}: {err}") from err
    return True


@contextlib.contextmanager
def _keep_sigterm_handler() -> Iterator[None]:
    """Keep the program's own SIGTERM handler across ``ray.init``.

    ``ray.init`` installs ``sys.exit(15)`` as the SIGTERM handler, and the driver's core
    worker a C++ crash handler that dumps a stack and may abort. When the program has a
    handler of its own (``gradcode compare`` writes partial results on SIGTERM), a SIGTERM
    that arrives while Ray starts is held, Ray's handlers are not installed, and the
    program's handler runs once ``ray.init`` has returned (so ``ray.shutdown`` knows every
    process it started). Without such a handler Ray's stays: its exit runs
    ``ray.shutdown`` at interpreter exit, so no Ray process outlives the driver.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    if not callable(previous):
        yield
        return
    try:
        from ray._private import ray_constants
        from ray._private import utils as ray_utils
    except ImportError:                                   # pragma: no cover - other Ray
        ray_constants = ray_utils = None
    pending: list[int] = []
    setter = getattr(ray_utils, "set_sigterm_handler", None)
    crash_flag = getattr(ray_constants, "RAY_DISABLE_FAILURE_SIGNAL_HANDLER", None)
    signal.signal(signal.SIGTERM, lambda signum, frame: pending.append(signum))
    if setter is not None:
        ray_utils.set_sigterm_handler = lambda handler: None
    if crash_flag is not None:
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    try:
        yield
    finally:
        if setter is not None:
            ray_utils.set_sigterm_handler = setter
        if crash_flag is not None:
            ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = crash_flag
        signal.signal(signal.SIGTERM, previous)
    if pending:
        previous(pending[0], None)                        # e.g. raises Terminated now


@contextlib.contextmanager
def _loopback_only(enabled: bool) -> Iterator[None]:
    """While starting a private cluster: make Ray resolve this node's IP to 127.0.0.1, in
    the driver and in every process the cluster starts (they inherit the environment)."""
    if not enabled:
        yield
        return
    try:
        from ray._private import ray_constants
    except ImportError:                                   # pragma: no cover - other Ray
        ray_constants = None
    env_before = os.environ.get(_SINGLE_MACHINE_ENV)
    flag_before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    if flag_before is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if env_before is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = env_before
        if flag_before is not None:
            ray_constants.ENABLE_RAY_CLUSTER = flag_before


# ---------------------------------------------------------------------------- backend
class RayBackend(HostBase):
    """Run the workers of a code as Ray actors on a cluster (or one machine).

    Args:
        address: where Ray runs (see :func:`connect`): ``"local"`` (default, a
            one-machine cluster started and stopped by this backend), ``"auto"``,
            ``"host:port"`` or ``"ray://host:port"``. If this process already called
            ``ray.init``, that connection is used and left open.
        num_cpus: CPUs of the local cluster (``address="local"`` only), >= 1.
        placement: ``"spread"`` (default) puts worker i on node ``i mod (#nodes)``
            (soft node affinity, so a restarted actor may move); ``"default"`` lets Ray
            choose.
        max_restarts: how many times Ray may restart a worker's actor after it dies
            (-1: forever). 0: a dead worker stays a straggler for the rest of training.
        worker_cpus: CPUs each actor reserves; default ``min(1, cpus per worker)`` of the
            nodes, so n workers always fit.
        time_scale: multiply every injected delay (e.g. 0.01 to run a model in seconds
            as milliseconds), as in the local backend.
        round_timeout: the longest a round may last (seconds; None: no limit); when it
            passes the round ends with whoever answered. Default 300 s (see
            :data:`gradcode.backends.base.DEFAULT_ROUND_TIMEOUT`): an actor that hangs
            while alive is never reported dead by Ray.
        start_timeout: seconds to wait for all actors to load their partitions.
        probe_timeout: seconds allowed to reach a remote cluster (<= 30).
        object_store_memory: bytes of the local cluster's object store (local only).
        quiet: no dashboard, no usage statistics, no log forwarding (see :func:`connect`).
        init_options: more keyword arguments for ``ray.init``.

    Raises:
        TypeError / ValueError: a bad argument, named in the message.

    Example:
        >>> import gradcode as gc                                        # doctest: +SKIP
        >>> with RayBackend(num_cpus=2) as backend:                      # doctest: +SKIP
        ...     hist = gc.training.train(problem, scheme, rounds=5, backend=backend)
    """

    name = "ray"
    clock = "wall"

    def __init__(self, address: str = "local", *, num_cpus: int | None = None,
                 placement: str = "spread", max_restarts: int = 0,
                 worker_cpus: float | None = None, time_scale: float = 1.0,
                 round_timeout: float | None = DEFAULT_ROUND_TIMEOUT, start_timeout: float = 120.0,
                 probe_timeout: float = 10.0, object_store_memory: int | None = None,
                 quiet: bool = True, init_options: dict[str, Any] | None = None) -> None:
        parse_address(address)
        if num_cpus is not None:
            num_cpus = _check_int("num_cpus", num_cpus, low=1)
        if address != "local" and num_cpus is not None:
            raise ValueError(f"ray backend: num_cpus={num_cpus} sizes a local cluster and "
                             f"must be None when joining address={address!r}")
        if placement not in _PLACEMENTS:
            raise ValueError(f"ray backend: placement={placement!r} must be one of "
                             f"{', '.join(map(repr, _PLACEMENTS))}")
        self.max_restarts = _check_int("max_restarts", max_restarts, low=-1)
        if worker_cpus is not None:
            worker_cpus = _check_real("worker_cpus", worker_cpus, low=0.0)
        self.address = address
        self.time_scale = _check_real("time_scale", time_scale, low=0.0)
        self.round_timeout = check_round_timeout("ray backend", round_timeout)
        self.num_cpus = num_cpus
        self.placement = placement
        self.worker_cpus = worker_cpus
        self.start_timeout = _check_real("start_timeout", start_timeout, low=0.0,
                                         low_open=True)
        self.probe_timeout = _check_real("probe_timeout", probe_timeout, low=0.0,
                                         high=_MAX_PROBE_S, low_open=True)
        if object_store_memory is not None:
            object_store_memory = _check_int("object_store_memory", object_store_memory,
                                             low=_MIN_OBJECT_STORE)
            if address != "local":
                raise ValueError(f"ray backend: object_store_memory sizes a local cluster and "
                                 f"must be None when joining address={address!r}")
        self.object_store_memory = object_store_memory
        self.quiet = bool(quiet)
        self.init_options = dict(init_options or {})
        self._owns_ray = False
        self._actors: list[Any] = []
        self._part_refs: dict[int, Any] = {}
        self._pending: dict[Any, int] = {}
        self._task: Any = CodedGradientTask()
        self._t0 = 0.0
        self._round = -1
        self._info = RoundInfo()
        self._alive = np.zeros(0, dtype=bool)
        self._model: Any = None
        self._cpus_per_worker = 0.0
        self._died: dict[int, int] = {}
        self.code: Any = None
        self.lost: dict[int, str] = {}       # worker -> why it was lost (last time)
        self.pids: list[int] = []            # worker -> actor process id (latest seen)
        self.nodes: list[str] = []           # worker -> node id at start
        self.restarts: dict[int, int] = {}   # worker -> times it came back in a new process
        self.bytes_broadcast = 0             # parameter bytes put in the object store
        self.bytes_returned = 0              # result bytes that came back

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, problem: Any, code: Any, *, delays: Any = None, task: Any = None) -> None:
        """Connect to Ray and start one actor per worker, holding its partitions.

        Each partition is put in the object store once; an actor receives references to
        the partitions it holds and loads them in its constructor.

        Args:
            problem: a :mod:`gradcode.problems` problem (its parts must be picklable).
            code: the :class:`gradcode.Code`; worker i holds the support of row i of B.
            task: the :class:`~gradcode.backends.base.WorkerTask` the actors run
                (default: the coded gradient).
            delays: a :mod:`gradcode.stragglers` delay model: worker i answers no sooner
                than ``delays.sample(round, load)[i]`` seconds after the round starts
                (the wait is cancellable); ``inf`` means it fails that round.
                ``None``: no injected delay.

        Calling it again restarts the workers (with the new problem, code and delays) on
        the same Ray connection.

        Raises:
            ConnectionError: the cluster cannot be reached.
            WorkersLostError: the actors did not start within ``start_timeout`` seconds
                (e.g. the cluster has too few resources) or one failed while loading.
        """
        ray = _import_ray()
        model = as_delay_model(delays)
        model.validate(code.n)
        if self._actors:
            self._kill_actors(ray)
        self._model = model
        self._task = CodedGradientTask() if task is None else task
        self._owns_ray = self._owns_ray | connect(self.address, num_cpus=self.num_cpus,
                                 object_store_memory=self.object_store_memory,
                                 probe_timeout=self.probe_timeout, quiet=self.quiet,
                                 **self.init_options)
        try:
            self._start_actors(ray, problem, code)
        except BaseException:
            self.close()
            raise

    def _placement(self, ray: Any, n: int) -> tuple[list, float, dict]:
        """Node of each worker (None: Ray chooses), CPUs per actor, CPUs per node."""
        nodes = _cpu_nodes(ray)                        # [(node id, CPUs)], sorted
        if not nodes:
            raise RuntimeError("ray backend: the Ray cluster has no alive node with CPUs")
        node_cpus = dict(nodes)
        if self.placement == "spread":
            assign: list[str | None] = [nodes[i % len(nodes)][0] for i in range(n)]
            counts: dict[str, int] = {}
            for node in assign:
                counts[node] = counts.get(node, 0) + 1   # type: ignore[index]
            per = min(node_cpus[node] / c for node, c in counts.items())
        else:
            assign = [None] * n
            per = sum(node_cpus.values()) / n
        cpus = self.worker_cpus
        if cpus is None:
            cpus = round(max(math.floor(min(1.0, per) / _CPU_GRANULARITY), 1)
                         * _CPU_GRANULARITY, 4)
        self._cpus_per_worker = cpus
        return assign, cpus, node_cpus

    def _start_actors(self, ray: Any, problem: Any, code: Any) -> None:
        B = code.B
        n = int(B.shape[0])
        self.code = code
        self.load = np.diff(B.indptr).astype(np.float64)
        held = np.unique(B.indices)
        self._part_refs = {int(j): ray.put(problem.part(int(j))) for j in held}
        assign, cpus, node_cpus = self._placement(ray, n)
        remote_cls = ray.remote(GradientWorker)
        actors = []
        for i in range(n):
            lo, hi = B.indptr[i], B.indptr[i + 1]
            cols = B.indices[lo:hi].copy()
            opts: dict[str, Any] = {"num_cpus": cpus, "max_restarts": self.max_restarts,
                                    "max_task_retries": 0}
            if assign[i] is not None:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(assign[i],
                                                                             soft=True)
            actors.append(remote_cls.options(**opts).remote(
                i, cols, B.data[lo:hi].copy(), [self._part_refs[int(j)] for j in cols],
                self._task))
        self._actors = actors
        refs = [a.ready.remote(int(problem.dim)) for a in actors]   # and warm up
        try:
            infos = ray.get(refs, timeout=self.start_timeout)
        except ray.exceptions.GetTimeoutError:
            total = sum(node_cpus.values())
            raise WorkersLostError(f"ray backend: {n} worker actors did not start within "
                                   f"start_timeout={self.start_timeout:g} s (each reserves "
                                   f"{cpus:g} CPUs; the cluster has {total:g})") from None
        except ray.exceptions.RayError as err:
            raise WorkersLostError(f"ray backend: a worker actor failed to start: "
                                   f"{err}") from err
        self.pids = [0] * n
        self.nodes = [""] * n
        for worker, pid, node in infos:
            self.pids[worker] = pid
            self.nodes[worker] = node
            self.restarts[worker] = 0
        self._dim = int(problem.dim)
        self._dtype = wire_dtype(getattr(problem, "dtype", np.float64))   # float32 models
        self._alive = np.ones(n, dtype=bool)

    def reassign(self, problem: Any, code: Any, task: Any = None) -> None:
        """Switch to another code (adaptive schemes): new actors, same Ray connection."""
        ray = _import_ray()
        if self._model is None:
            raise RuntimeError("ray backend: reassign() before start()")
        self._model.validate(code.n)
        self._task = CodedGradientTask() if task is None else task
        self._kill_actors(ray)
        try:
            self._start_actors(ray, problem, code)
        except BaseException:
            self.close()
            raise

    def _kill_actors(self, ray: Any) -> None:
        with contextlib.suppress(Exception):        # a broken cluster must not block this
            self.stop_round()
        for actor in self._actors:
            with contextlib.suppress(Exception):   # already gone: nothing to do
                ray.kill(actor, no_restart=True)
        self._actors, self._part_refs = [], {}
        self.lost, self.restarts, self._died = {}, {}, {}
        self._alive = np.zeros(0, dtype=bool)

    # ---------------------------------------------------------------- a round
    def broadcast(self, round: int, params: np.ndarray) -> np.ndarray:
        """Start round t: cancel the previous one, put ``params`` in the object store
        once and call every live worker with a finite delay (``compute``, or the
        streaming ``run`` for a task that streams); returns the asked workers.

        Raises:
            RuntimeError: before ``start``. ValueError: params of the wrong shape.
        """
        ray = _import_ray()
        if not self._actors:
            raise RuntimeError("ray backend: broadcast() before start()")
        self.cancel()
        round = int(round)
        delays = round_delays(self._model, round, self.load, self.code.n, self.time_scale)
        # no defensive copy: ray.put below serialises a snapshot of params at once
        params = np.ascontiguousarray(params, dtype=self._dtype)
        if params.shape != (self._dim,):
            raise ValueError(f"ray backend: params must have shape ({self._dim},), got "
                             f"{params.shape}")
        asked = np.flatnonzero(self._alive & np.isfinite(delays))
        self._info = RoundInfo(asked=asked)
        self._round = round
        self._t0 = time.monotonic()                   # the round starts with the broadcast
        ref = ray.put(params)                         # the one broadcast of this round
        self.bytes_broadcast += params.nbytes
        streams = bool(self._task.streams)
        for i in asked.tolist():
            actor = self._actors[i]
            call = actor.run.options(num_returns="streaming") if streams else actor.compute
            self._pending[call.remote(round, ref, float(delays[i]))] = i
        return asked

    def send(self, worker: int, message: Any) -> None:
        """A protocol message to one worker's running task (its ``message`` method)."""
        if self._alive[worker]:
            self._actors[worker].message.remote(self._round, message)

    def events(self, deadline: float | None = None) -> Iterator[Event]:
        """The round's events in arrival order (see :mod:`gradcode.backends.base`), one
        ``ray.wait`` per event, up to ``deadline`` seconds after the broadcast."""
        ray = _import_ray()
        pending, info, t0 = self._pending, self._info, self._t0
        streams = bool(self._task.streams)
        while pending:
            timeout = None
            if deadline is not None:
                timeout = deadline - (time.monotonic() - t0)
                if timeout <= 0:
                    break
            # one ray.wait per event (as a bare loop does): when several answers are
            # already done, the next call returns at once with the next one
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
            if not ready:
                break                                 # deadline passed
            obj = ready[0]
            worker = pending[obj]
            if streams:
                try:
                    ref = next(obj)
                except StopIteration:                 # the task ended (cancel, or done)
                    pending.pop(obj, None)
                    continue
            else:
                ref = obj
            event = self._event(ray, ref, worker, time.monotonic() - t0)
            if event is None:
                continue
            if event.kind in ("result", "dropped", "dead"):
                pending.pop(obj, None)
            info.end_time = event.time
            yield event
        if deadline is not None and pending:
            info.end_time = float(deadline)
            yield Event(-1, float(deadline), float(deadline), self._round, "timer")

    def _event(self, ray: Any, ref: Any, worker: int, now: float) -> Event | None:
        """The event of one finished answer ``(round, worker, kind, value, pid)``; None
        for an answer of an older round."""
        info, rnd = self._info, self._round
        got = self._fetch(ray, ref, worker, info)
        if got is None:
            kind, value = self._failure(worker, info)
            return Event(worker, value, now, rnd, kind)
        got_round, kind, value = got[0], got[2], got[3]
        if got_round != rnd or got[1] != worker or (kind == "result" and value is None):
            info.late += 1
            return None
        reason = None
        if kind == "error":
            reason = f"worker error: {value}"
        elif kind == "result":
            value = np.asarray(value)
            reason = bad_result(value, self._dim)
            if reason is None:
                self.bytes_returned += value.nbytes
        if reason is not None:
            info.dropped.append((worker, reason))
            return Event(worker, reason, now, rnd, "dropped")
        return Event(worker, value, now, rnd, kind)

    def _fetch(self, ray: Any, ref: Any, worker: int, info: RoundInfo) -> Any:
        """ray.get one finished actor answer; failures are recorded (lost, dead,
        dropped) and give None."""
        exc = ray.exceptions
        try:
            got = ray.get(ref)
        except exc.TaskCancelledError:
            return None
        except exc.ActorDiedError:
            # Ray queues calls to an actor that is restarting, so ActorDiedError means the
            # actor is gone for good unless it still has restarts left (then a second
            # failure in a row settles it).
            self._died[worker] = self._died.get(worker, 0) + 1
            permanent = (self.max_restarts == 0 or self._died[worker] >= 2
                         or 0 < self.max_restarts <= self.restarts.get(worker, 0))
            self._lose(worker, "actor died", info, permanent=permanent)
            return None
        except exc.RayActorError:                     # ActorUnavailableError: node lost,
            self._lose(worker, "actor unavailable", info, permanent=False)  # or restarting
            return None
        except (exc.ObjectLostError, exc.OwnerDiedError) as err:
            info.dropped.append((worker, f"result lost: {type(err).__name__}"))
            return None
        except exc.RayTaskError as err:
            cause = getattr(err, "cause", None) or err
            info.dropped.append((worker, f"worker error: {type(cause).__name__}: {cause}"))
            return None
        self._died.pop(worker, None)
        pid = got[-1]
        if self.pids[worker] != pid:
            self.restarts[worker] = self.restarts.get(worker, 0) + 1
            self.pids[worker] = pid
        return got

    def _lose(self, worker: int, why: str, info: RoundInfo, *, permanent: bool) -> None:
        self.lost[worker] = why
        if permanent and self._alive[worker]:
            self._alive[worker] = False
            info.dead.append(worker)

    def _failure(self, worker: int, info: RoundInfo) -> tuple[str, Any]:
        """The event kind for a worker whose answer failed (see :meth:`_fetch`)."""
        if not self._alive[worker]:
            return "dead", None
        if info.dropped and info.dropped[-1][0] == worker:
            return "dropped", info.dropped[-1][1]
        return "dropped", self.lost.get(worker, "no answer")

    def cancel(self) -> None:
        """End what is left of the round: ``ray.cancel`` of the plain calls (interrupts
        the injected delays), ``cancel`` of the streaming tasks; idempotent."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        ray = _import_ray()
        streams = bool(self._task.streams)
        for obj, worker in pending.items():
            with contextlib.suppress(Exception):   # already gone: nothing to do
                if streams:
                    self._actors[worker].cancel.remote(self._round)
                else:
                    ray.cancel(obj)

    def close(self) -> None:
        """Kill the actors, free the partitions and, if this backend started Ray, stop it.

        Safe to call more than once.
        """
        if not (self._actors or self._owns_ray or self._part_refs):
            return
        ray = _import_ray()
        with contextlib.suppress(Exception):        # closing must not fail on a broken cluster
            self.stop_round()
        for actor in self._actors:
            with contextlib.suppress(Exception):   # already gone: nothing to do
                ray.kill(actor, no_restart=True)
        self._actors = []
        self._part_refs = {}
        self._alive = np.zeros(0, dtype=bool)
        if self._owns_ray:
            self._owns_ray = False
            ray.shutdown()


# ---------------------------------------------------------------------------- helpers
def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the ray backend needs Ray: pip install 'gradcode[ray]'") from err
    return ray


def _check_int(name: str, value: Any, *, low: int | None = None) -> int:
    return check_int("ray backend", name, value, low=low)


def _check_real(name: str, value: Any, **bounds: Any) -> float:
    return check_real("ray backend", name, value, **bounds)


def _cpu_nodes(ray: Any) -> list[tuple[str, float]]:
    """Alive nodes with CPUs as (node id, CPUs), sorted by node id."""
    nodes = [(n["NodeID"], float(n.get("Resources", {}).get("CPU", 0.0)))
             for n in ray.nodes() if n.get("Alive")]
    return sorted((nid, c) for nid, c in nodes if c > 0)


def _summary(lost: dict[int, str]) -> str:
    items = sorted(lost.items())
    text = ", ".join(f"{w}: {why}" for w, why in items[:10])
    return text + (f", ... ({len(items)} in all)" if len(items) > 10 else "")
