"""`sentinel worker` whose table changelog writes are slow, for the commit-order test.

While the file named by $SENTINEL_TEST_SLOW_CHANGELOG_FILE exists, each message to a table's
changelog topic waits as many seconds as the file says before it is handed to the Kafka client
(as a first send to a partition waits for metadata on a busy broker). Everything else is the
production worker (`python -m tests.support.slow_changelog_worker` = `sentinel worker`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from faust.topics import Topic

from sentinel.cli import main

SLOW_FILE = "SENTINEL_TEST_SLOW_CHANGELOG_FILE"
_publish = Topic.publish_message


async def slow_publish(self: Topic, fut: Any, wait: bool = False) -> Any:
    flag = Path(os.environ[SLOW_FILE])
    topic = fut.message.channel.get_topic_name() if fut.message.channel else ""
    if topic.endswith("-changelog") and flag.exists():
        await asyncio.sleep(float(flag.read_text() or "3"))
    return await _publish(self, fut, wait=wait)


if __name__ == "__main__":
    Topic.publish_message = slow_publish  # type: ignore[method-assign]
    sys.exit(main(["worker"]))
