"""Where a batch's or a LOSO run's tasks run: a process pool on this machine, or a Ray cluster.

Both take the same module-level functions and arguments and hand back each task's result (or its
exception) as it completes, so `microexp batch` and `microexp train loso` keep one code path.

Ray (`pip install 'microexp-edge[ray]'`): with no address a local Ray instance is started for the
run (no dashboard; Ray's services listen on every interface, as Ray 2.60 does, and answer only
callers holding the instance's token); with an address (`ray://host:10001`, `host:6379` or `auto`)
the tasks go to that cluster, whose nodes must have this package installed and see the same paths
(a shared filesystem) for inputs and outputs. A task whose worker process dies (killed, out of
memory, a node lost) is run again by Ray up to `retries` times; an exception raised by the task
itself is not retried, it is the task's result."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

RAY_EXTRA = "pip install 'microexp-edge[ray]'"


class RayUnavailable(RuntimeError):
    """--ray was asked for and Ray is not installed."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--ray needs Ray, which is not installed; {RAY_EXTRA}") from None
    return ray


def _die_with_parent(initializer, shared) -> None:
    """A process-pool worker's start: on Linux, ask the kernel to kill it when the driver dies
    (a driver killed with SIGKILL cannot stop its pool, whose workers would otherwise go on
    alone); then the run's own initializer."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl: workers may outlive a killed driver
            pass
        if os.getppid() == 1:  # the driver died before the request was made
            os._exit(1)
    if initializer is not None:
        initializer(shared)


def _call_with_shared(initializer, shared, fn, *args):
    """Inside a Ray worker: install the run's shared data (a process pool's initializer) first."""
    if initializer is not None:
        initializer(shared)
    return fn(*args)


class TaskPool:
    """submit(fn, *args, key=) -> a handle; completed() yields (key, result, exception) as tasks end.

    workers: tasks at once (on Ray: each task asks for one CPU, so a cluster runs as many at once
    as it has CPUs, and `workers` sets a local instance's CPUs). `ray_address`: None for
    the local process pool, "" for a local Ray instance, else a cluster's address. `initializer`
    and `shared`: called as initializer(shared) in each worker before its tasks (large arrays are
    put once into Ray's object store). `start`: the process pool's start method."""

    def __init__(self, workers: int = 1, ray_address: Optional[str] = None, initializer: Optional[Callable] = None,
                 shared: Any = None, start: str = "spawn", retries: int = 3):
        self.ray = None
        self._pending: Dict[Any, Any] = {}
        if ray_address is None:
            self._pool = ProcessPoolExecutor(max(1, workers), mp_context=get_context(start),
                                             initializer=_die_with_parent, initargs=(initializer, shared))
            return
        ray = import_ray()
        self.ray = ray
        self._started = False
        if not ray.is_initialized():  # else: the caller's Ray, left running
            if ray_address:
                _check_reachable(ray_address)
                try:
                    ray.init(address=ray_address, log_to_driver=False, logging_level=logging.WARNING)
                except ConnectionError as err:
                    raise ConnectionError(f"{err}. A cluster started with token authentication answers only callers "
                                          "with its token: set RAY_AUTH_MODE=token and the cluster's RAY_AUTH_TOKEN "
                                          "here") from None
            else:  # a new local instance for this run only, even where another Ray runs
                # (address="local"), with Ray's token authentication (its default since 2.59)
                ray.init(address="local", num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING,
                         object_store_memory=int(os.environ.get("MICROEXP_RAY_STORE_BYTES", 200 * 2 ** 20)))
            self._started = True
        self._remote = ray.remote(num_cpus=1, max_retries=retries)(_call_with_shared)
        self._init = initializer
        self._shared = ray.put(shared) if initializer is not None else None

    def submit(self, fn: Callable, *args, key: Any = None):
        """Start fn(*args); `key` (default the handle) is what completed() hands back."""
        if self.ray is None:
            handle = self._pool.submit(fn, *args)
        else:
            handle = self._remote.remote(self._init, self._shared, fn, *args)
        self._pending[handle] = handle if key is None else key
        return handle

    def completed(self) -> Iterator[Tuple[Any, Any, Optional[BaseException]]]:
        """(key, result, None) or (key, None, exception) for every submitted task, as each ends."""
        while self._pending:
            if self.ray is None:
                done, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
            else:
                done, _ = self.ray.wait(list(self._pending), num_returns=1)
            for handle in done:
                key = self._pending.pop(handle)
                try:
                    result = handle.result() if self.ray is None else self.ray.get(handle)
                except Exception as err:  # the task's own error (Ray wraps it; its cause is the original)
                    yield key, None, _unwrapped(err)
                else:
                    yield key, result, None

    def close(self) -> None:
        if self.ray is None:
            self._pool.shutdown(cancel_futures=True)
        else:
            for handle in list(self._pending):
                self.ray.cancel(handle, force=True)
            self._pending.clear()
            if self._started:
                self.ray.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A host:port address that nothing answers at is named at once (Ray itself retries for a
    minute before it gives up). ray:// and 'auto' are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray {address!r}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"no Ray cluster answers at {address} ({err.strerror or err})") from None


def _unwrapped(err: BaseException) -> BaseException:
    """A Ray task's exception as the task raised it (RayTaskError carries it as its cause)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err
