"""Dask distributed plumbing shared by training and perturbation (``--scheduler``; SPEC §5.3).

* :func:`parse_scheduler` / :func:`check_scheduler` — ``tcp://HOST:PORT`` of a running ``dask scheduler``,
  or ``local:N`` for a local cluster of N single-threaded worker processes; one clear line otherwise, or
  when Dask is not installed.
* :func:`connect` — a client with at least one worker whose package versions match this process; a local
  cluster is torn down on exit.
* :class:`Shipment` — a large read-only object (a training context, a Betabase) sent to the cluster once
  and kept by every worker process for the whole run: tasks carry only its name (a few bytes), and
  :meth:`Shipment.loads` counts how often each worker deserialised it (once).

``distributed`` is imported inside functions: ``spacetravlr --help`` and every local run stay free of it.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ConfigError, InputError

DASK_EXTRA = "pip install 'spacetravlr-py[dask]'"
LOCAL_PREFIX = "local:"
SCHEDULER_KEY = "[execution].scheduler (--scheduler)"
CONNECT_TIMEOUT_S = 30.0
WORKER_WAIT_NOTE_S = 10.0
"""After this long without a worker, say that the run waits for workers (it keeps waiting)."""
POLL_S = 0.2
REVIVE_EVERY_S = 2.0
"""``local:N``: how often the client checks that the cluster still has its N workers."""
FETCH_TIMEOUT_S = 60.0
"""A task waits this long for a shipped object to exist in the cluster (not for its transfer)."""


# -- the scheduler address ---------------------------------------------------------------------


def parse_scheduler(value: str, where: str = SCHEDULER_KEY) -> tuple[str, int]:
    """``"local:N"`` → ``("", N)``; ``"tcp://HOST:PORT"`` (or ``HOST:PORT``) → ``(address, 0)``.

    Raises
    ------
    ConfigError
        One line naming ``where``, the value and the two accepted forms.
    """
    v = value.strip()
    hint = ("expected tcp://HOST:PORT (a running `dask scheduler`) or local:N (a local cluster of N worker "
            "processes)")
    if v.startswith(LOCAL_PREFIX):
        n = v[len(LOCAL_PREFIX):]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"{where} = {value!r}: {hint}, with N >= 1")
        return "", int(n)
    scheme, sep, rest = v.rpartition("://")
    host, colon, port = (rest if sep else v).rpartition(":")
    if (sep and scheme not in ("tcp", "tls", "ucx", "ws", "wss")) or not colon or not host or not port.isdigit():
        raise ConfigError(f"{where} = {value!r}: {hint}")
    return (v if sep else f"tcp://{v}"), 0


def _distributed(where: str) -> Any:
    """The ``distributed`` module, or one line naming the extra to install."""
    try:
        import distributed
    except ImportError as e:
        raise ConfigError(f"{where}: Dask distributed is not installed ({e}); install it with {DASK_EXTRA}") from None
    return distributed


def check_scheduler(spec: str, where: str = SCHEDULER_KEY) -> None:
    """Raise one line when ``spec`` is malformed or Dask distributed is not installed."""
    parse_scheduler(spec, where)
    _distributed(where)


def describe_scheduler(spec: str) -> str:
    """``"a local Dask cluster of 4 worker processes"`` or ``"the Dask scheduler tcp://h:8786"``."""
    address, n_local = parse_scheduler(spec)
    return f"a local Dask cluster of {n_local} worker processes" if n_local else f"the Dask scheduler {address}"


# -- connecting --------------------------------------------------------------------------------


class _QuietTeardown(logging.Filter):
    """Hides the nanny's "still alive after N seconds, killing" while a local cluster closes: a worker that
    compiled numba kernels can take longer than the nanny's grace period to finish exiting under load."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "still alive after" not in record.getMessage()


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own progress lines (INFO) off while we run; its warnings and errors still show."""
    log, nanny = logging.getLogger("distributed"), logging.getLogger("distributed.nanny")
    level, f = log.level, _QuietTeardown()
    log.setLevel(max(level, logging.WARNING))
    nanny.addFilter(f)
    try:
        yield
    finally:
        nanny.removeFilter(f)
        log.setLevel(level)


@contextlib.contextmanager
def connect(spec: str, *, where: str = SCHEDULER_KEY, check_stop: Callable[[], object] | None = None,
            say: Callable[[str], None] | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on ``spec`` with at least one worker running this package's versions.

    A ``local:N`` cluster (N single-threaded worker processes) is torn down on exit. For an address, waits
    until a worker has joined (saying so once through ``say``); ``check_stop`` is called while waiting and
    may raise to end the wait (a stop request; Ctrl-C always does).
    """
    address, n_local = parse_scheduler(spec, where)
    distributed = _distributed(where)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_dask())  # entered first, so it is still active while closing
        if n_local:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=n_local, threads_per_worker=1, processes=True, dashboard_address=":0"))
            client = stack.enter_context(distributed.Client(cluster))
            stack.enter_context(_keep_local_workers(client))  # left first: before the cluster closes
        else:
            try:
                client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as e:
                raise InputError(f"{where} = {spec!r}: no Dask scheduler answers at {address} ({e}); start one "
                                 "with `dask scheduler`, or use local:N") from None
            stack.enter_context(client)
            _wait_for_workers(client, spec, check_stop, say)
        check_workers(client, spec, where)
        yield client


def _wait_for_workers(client: Any, spec: str, check_stop: Callable[[], object] | None,
                      say: Callable[[str], None] | None) -> None:
    t0, said = time.monotonic(), False
    while not client.nthreads():
        if check_stop is not None:
            check_stop()
        if not said and time.monotonic() - t0 > WORKER_WAIT_NOTE_S and say is not None:
            say(f"waiting for Dask workers to join {spec} (start them with `dask worker {spec} --nthreads 1`)")
            said = True
        time.sleep(POLL_S)


def versions() -> dict[str, str]:
    """Versions that decide the bits of a result (compared between the client and every worker)."""
    import numba
    import numpy
    import scipy

    from . import __version__

    return {"spacetravlr-py": __version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__}


def check_workers(client: Any, spec: str, where: str = SCHEDULER_KEY) -> None:
    """Every worker can import this package, in the versions used here (else results could differ)."""
    try:
        theirs: dict[str, dict[str, str]] = client.run(versions)
    except Exception as e:
        raise InputError(f"{where} = {spec!r}: the Dask workers cannot run spacetravlr-py "
                         f"({e.__class__.__name__}: {e}); install spacetravlr-py on every worker "
                         f"({DASK_EXTRA})") from None
    ours = versions()
    for addr, v in sorted(theirs.items()):
        diff = [f"{k} {v.get(k)} (here {ours[k]})" for k in ours if v.get(k) != ours[k]]
        if diff:
            raise InputError(f"{where} = {spec!r}: worker {addr} runs {', '.join(diff)}; install the same "
                             "versions on the workers, or the results would not match a local run")


# -- shipping a large object once per worker ---------------------------------------------------

_LOADS: dict[str, int] = {}
"""Per worker process: how many times each shipped object was deserialised (received or unspilled)."""
_CACHE: OrderedDict[str, Any] = OrderedDict()
"""Per worker process: the shipped objects of the latest runs, by token (a long-lived worker serves many)."""
CACHED_SHIPMENTS = 2
_LOCK = threading.Lock()
_PINNED = False


class _Box:
    """What travels: the object and its token; unpickling it counts a load in the receiving process."""

    def __init__(self, obj: Any, token: str) -> None:
        self.obj, self.token = obj, token

    def __getstate__(self) -> dict[str, Any]:
        return {"obj": self.obj, "token": self.token}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        _LOADS[self.token] = _LOADS.get(self.token, 0) + 1  # one dict update under the GIL

    def nbytes(self) -> int:
        """Bytes of the pickled box (arrays as out-of-band buffers, as Dask sends them)."""
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(self, protocol=5, buffer_callback=buffers.append)
        return len(head) + sum(b.raw().nbytes for b in buffers)


def loads_of(token: str) -> int:
    """On a worker: how many times the shipment ``token`` was deserialised there."""
    return _LOADS.get(token, 0)


def forget(token: str) -> bool:
    """On a worker: drop the cached shipment ``token`` (its run ended); True if it was cached."""
    with _LOCK:
        return _CACHE.pop(token, None) is not None


async def forget_soon(token: str) -> bool:
    """:func:`forget` as a coroutine: Dask's ``client.run(..., wait=False)`` accepts only coroutine
    functions (a plain function fails on every worker with "Combination not supported")."""
    return forget(token)


def received(name: str, token: str) -> Any:
    """On a worker, inside a task: the shipped object, fetched on first use from the worker holding it.

    ``name`` is the Dask ``Variable`` holding the shipment's future. Deliberately not a task dependency:
    Dask's memory manager drops extra replicas of data that tasks depend on, and the next task on that
    worker would fetch the object again; this process-level cache keeps one copy per worker for the run.
    """
    with _LOCK:  # held while fetching: concurrent tasks of a multi-threaded worker wait for one fetch
        box = _CACHE.get(token)
        if box is None:
            from distributed import Variable, get_client, wait

            client = get_client()
            fut = Variable(name, client=client).get(timeout=FETCH_TIMEOUT_S)
            wait(fut, timeout=FETCH_TIMEOUT_S)  # a lost object raises here (the client sends it again)
            # gather, not Future.result: it takes the worker's own copy when it holds the object
            box = client.gather(fut)
            _CACHE[token] = box
            while len(_CACHE) > CACHED_SHIPMENTS:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(token)
        return box.obj


def pin_threads() -> None:
    """One BLAS thread for the whole worker process, kept (BLAS limits are process-wide: restoring them
    after each task would race with the tasks of other worker threads)."""
    global _PINNED
    if not _PINNED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
        _PINNED = True


class Shipment:
    """``obj`` scattered once to the cluster; each worker fetches it on its first task (:func:`received`).

    Attributes
    ----------
    token : str
        Identifies the shipment on the workers.
    nbytes : int
        Serialised size of the object (what each worker receives once).
    ships : int
        Times it was sent (more than 1 only when every worker holding it died).
    """

    def __init__(self, client: Any, obj: Any) -> None:
        from distributed import Variable

        self.client = client
        self.token = uuid.uuid4().hex
        self.name = f"spacetravlr-shipment-{self.token}"
        self._box = _Box(obj, self.token)
        self._var = Variable(self.name, client=client)
        self.nbytes = self._box.nbytes()
        self.ships = 0
        self.future: Any = None
        self.send()

    def send(self) -> None:
        """Scatter the object to one worker (the others copy it from there when they first need it)."""
        self.future = self.client.scatter(self._box, hash=False)
        self._var.set(self.future)
        self.ships += 1

    def resend(self) -> bool:
        """Send it again if it was lost; False while no worker is there to take it (try again later)."""
        if not self.lost:
            return True
        try:
            self.send()
        except TimeoutError:  # "No valid workers found": the nannies / the batch system are restarting them
            return False
        return True

    @property
    def lost(self) -> bool:
        """True when every worker holding it died (then :meth:`send` it again)."""
        return bool(self.future.status != "finished")

    def loads(self) -> dict[str, int]:
        """Per worker address: times the object was deserialised there."""
        return dict(self.client.run(loads_of, self.token))

    def close(self) -> None:
        """Release it on the scheduler and drop the workers' copies (without waiting for them)."""
        with contextlib.suppress(Exception):
            self.client.run(forget_soon, self.token, wait=False)
        with contextlib.suppress(Exception):
            self._var.delete()
        with contextlib.suppress(Exception):
            self.future.release()


@contextlib.contextmanager
def _keep_local_workers(client: Any) -> Iterator[None]:
    """While a ``local:N`` cluster is in use, start again every few seconds the workers whose nanny gave up
    (:func:`revive_local_workers`): a task waiting for a recomputation would otherwise wait forever."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(REVIVE_EVERY_S):
            with contextlib.suppress(Exception):
                revive_local_workers(client)

    t = threading.Thread(target=watch, name="spacetravlr-local-workers", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()


def revive_local_workers(client: Any) -> None:
    """``local:N``: start again the workers whose nanny gave up (a worker killed while it was starting
    closes its nanny, and Dask then drops it from the cluster); nothing for a remote scheduler."""
    cluster = getattr(client, "cluster", None)
    if cluster is not None and hasattr(cluster, "worker_spec"):
        cluster.scale(len(cluster.worker_spec))


def task_nbytes(key: str, func: Callable[..., Any], *args: Any) -> int:
    """Bytes of one task as Dask serialises it (function by reference, then its arguments)."""
    try:
        from dask._task_spec import Task
        from distributed.protocol import serialize, to_serialize
        from distributed.utils import nbytes
    except ImportError:  # an older Dask: the same content, pickled
        return len(pickle.dumps((key, func, *args), protocol=5))
    header, frames = serialize(to_serialize(Task(key, func, *args)), on_error="raise")
    return len(pickle.dumps(header)) + sum(nbytes(f) for f in frames)


# -- many independent tasks on one shipment -----------------------------------------------------


def call_with(func: Callable[..., Any], name: str, token: str, *args: Any) -> Any:
    """A task: ``func(shipped object, *args)`` with one BLAS / numba thread (results independent of the
    worker's cores)."""
    from ._threads import numba_threads

    pin_threads()
    obj = received(name, token)
    with numba_threads(1):
        return func(obj, *args)


def map_shipped(client: Any, shipment: Shipment, func: Callable[..., Any], calls: list[tuple[Any, ...]], *,
                label: str = "spacetravlr", in_flight: int = 2, resubmits: int = 3) -> Iterator[tuple[int, Any]]:
    """Run ``func(obj, *calls[i])`` on the cluster for every ``i``; yield ``(i, result)`` as tasks finish.

    At most ``in_flight`` tasks per worker thread are outstanding (the rest wait here, so a stop or
    Ctrl-C cancels little); leaving the loop early cancels them. A task that failed because every worker
    holding the shipment died is sent again after the shipment; one that raised is retried ``resubmits``
    times (the error may be the cluster's: a lost connection, a worker shutting down), then its exception
    is raised here.
    """
    import queue as _queue

    done: _queue.Queue[int] = _queue.Queue()
    todo = list(range(len(calls)))[::-1]
    inflight: dict[int, tuple[Any, int, int]] = {}  # index → (future, attempt, shipments before it)
    inflight_attempts: dict[int, int] = {}
    limit = max(1, sum(client.nthreads().values())) * max(1, in_flight)

    sent = [0]

    def submit(i: int, attempt: int) -> None:
        # unique per submission: Dask hands back the old (failed) future for a key it still knows
        fut = client.submit(call_with, func, shipment.name, shipment.token, *calls[i],
                            key=f"{label}-{i}-{shipment.token[:8]}-{sent[0]}", pure=False)
        sent[0] += 1
        inflight[i] = (fut, attempt, shipment.ships)
        fut.add_done_callback(lambda f, i=i: done.put(i))

    parked: list[int] = []  # tasks that failed because the shipment was lost: sent again after it
    try:
        while todo or inflight or parked:
            if shipment.resend() and parked:
                for i in parked:
                    submit(i, inflight_attempts.get(i, 0))
                parked.clear()
            while todo and len(inflight) < limit:
                submit(todo.pop(), 0)
            try:
                i = done.get(timeout=POLL_S)
            except _queue.Empty:
                continue
            fut, attempt, ships = inflight.pop(i)
            if fut.status == "finished":
                try:
                    res = fut.result()
                except Exception:  # lost with its worker before it was fetched, recomputed in vain
                    pass
                else:
                    yield i, res
                    continue
            if shipment.lost or shipment.ships > ships:
                inflight_attempts[i] = attempt
                parked.append(i)
            elif attempt < resubmits:
                submit(i, attempt + 1)
            else:
                fut.result()  # raises the task's exception
    finally:
        if inflight:
            with contextlib.suppress(Exception):
                client.cancel([f for f, _, _ in inflight.values()])
