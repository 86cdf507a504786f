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

# One item per document, under the action the request used (logpipe: create;
# rsyslog's omelasticsearch: index); a client that finds no matching item retries.
_ITEMS = {b"create": b'{"create":{"status":201}}', b"index": b'{"index":{"status":201}}'}


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def bulk(self, request: web.Request) -> web.Response:
        body = await request.read()
        action = b"index" if body.startswith(b'{"index"') else b"create"
        # Documents = action lines (rsyslog ends its body with an extra blank line).
        head = b'{"' + action + b'":'
        docs = body.count(b"\n" + head) + body.startswith(head)
        self.count += docs
        self.bytes += len(body)
        items = b",".join([_ITEMS[action]] * docs)
        answer = b'{"took":1,"errors":false,"items":[' + items + b"]}"
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
    app.router.add_post("/_bulk", sink.bulk)  # rsyslog's omelasticsearch in bulk mode
    app.router.add_get("/_count", sink.counts)
    app.router.add_get("/_index_template/{name}", sink.ok)
    app.router.add_get("/_cluster/health", sink.ok)
    app.router.add_get("/", sink.ok)  # omelasticsearch's liveness check
    app.router.add_get("/_cat/health", sink.ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
