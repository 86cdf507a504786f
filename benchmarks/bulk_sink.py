"""A minimal Elasticsearch stand-in for benchmarks: counts ``_bulk`` documents, answers 201.

It answers just enough of the API for ``logpipe run``: the index-template check,
cluster health, and ``_bulk`` with one ``create`` item per document. It is a
benchmark sink, not a test double: tests use the real Elasticsearch.

    python benchmarks/bulk_sink.py PORT     # GET /_count returns {"count": N}
"""

from __future__ import annotations

import sys

import orjson
from aiohttp import web

_ITEM = b'{"create":{"status":201}}'


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def bulk(self, request: web.Request) -> web.Response:
        body = await request.read()
        docs = body.count(b"\n") // 2
        self.count += docs
        self.bytes += len(body)
        answer = b'{"took":1,"errors":false,"items":[' + b",".join([_ITEM] * docs) + b"]}"
        return web.Response(body=answer, content_type="application/json")

    async def counts(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"count": self.count, "bytes": self.bytes}),
            content_type="application/json",
        )

    async def ok(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "green"})


def main() -> None:
    port = int(sys.argv[1])
    sink = Sink()
    app = web.Application(client_max_size=256 * 1024**2)
    app.router.add_post("/{index}/_bulk", sink.bulk)
    app.router.add_get("/_count", sink.counts)
    app.router.add_get("/_index_template/{name}", sink.ok)
    app.router.add_get("/_cluster/health", sink.ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
