"""The one reader of Celery queue depths: a few LLENs on the Redis broker.

Used by the scrape-time metric (churn_platform.collectors: churn_celery_queue_depth), the worker
status page and command, and the batch watchdog (predictions.operations).
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings

# kombu's Redis transport keeps each priority step of a queue in its own list: "<queue>" for the
# default step and "<queue>\x06\x16<step>" for the others (kombu.transport.redis).
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)

_clients: dict[str, Any] = {}


def queue_names() -> list[str]:
    """The default queue and every queue a task route names."""
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route)
    return sorted(names)


def queue_depths() -> dict[str, int] | None:
    """Messages waiting per queue; None when tasks run in-process or the broker is not Redis.

    Raises redis.RedisError when the broker does not answer (within 2 s): callers decide whether
    that is a counted collector failure or an unknown figure.
    """
    broker = settings.CELERY_BROKER_URL or ""
    if settings.CELERY_TASK_ALWAYS_EAGER or not broker.startswith(("redis://", "rediss://", "unix://")):
        return None
    client = _clients.get(broker)
    if client is None:
        client = _clients[broker] = redis.Redis.from_url(broker, socket_timeout=2, socket_connect_timeout=2)
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    queues = queue_names()
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for step in KOMBU_PRIORITY_STEPS:
            pipe.llen(f"{prefix}{queue}" if step == 0 else f"{prefix}{queue}{KOMBU_PRIORITY_SEPARATOR}{step}")
    lengths = pipe.execute()
    steps = len(KOMBU_PRIORITY_STEPS)
    return {queue: int(sum(lengths[i * steps : (i + 1) * steps])) for i, queue in enumerate(queues)}
