"""The data every LOSO task reads (maps, targets, subjects, landmarks, threads, ...): installed once
per worker process (a process pool's initializer, or before each Ray task from the object store)
instead of being sent with every task."""
from typing import Dict

SHARED: Dict[str, object] = {}


def install(shared: Dict[str, object]) -> None:
    SHARED.update(shared)
