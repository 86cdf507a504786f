"""logpipe tail's pure parts: the query it sends and the line it prints."""

from __future__ import annotations

import pytest

from logpipe import tail


def test_levels_at_least_counts_downwards_from_emerg_with_common_spellings() -> None:
    assert tail.levels_at_least("err") == ["emerg", "emergency", "fatal", "alert", "crit",
                                           "critical", "err", "error"]  # fmt: skip
    assert tail.levels_at_least("ERROR") == tail.levels_at_least("err")
    assert "warn" in tail.levels_at_least("warning") and "info" not in tail.levels_at_least("warn")
    with pytest.raises(ValueError, match="unknown severity 'loud'"):
        tail.levels_at_least("loud")


def test_query_has_one_filter_per_option() -> None:
    assert tail.query(tail.Filters()) == {"bool": {"filter": []}}
    q = tail.query(
        tail.Filters(container="web", host="n1", severity="crit", text="disk full", since="10m"),
        "now-30s",
    )
    filters = q["bool"]["filter"]
    assert {"term": {"container.name": "web"}} in filters
    assert {"terms": {"log.level": tail.levels_at_least("crit")}} in filters
    assert {"range": {"@timestamp": {"gte": "now-10m"}}} in filters
    assert {"range": {"event.created": {"gte": "now-30s"}}} in filters
    text = next(f for f in filters if "simple_query_string" in f)["simple_query_string"]
    assert text["query"] == "disk full" and text["default_operator"] == "and"
    assert tail.time_bound("2026-11-30T10:00:00Z") == "2026-11-30T10:00:00Z"


def test_format_line_names_the_container_else_the_process() -> None:
    base = {"@timestamp": "2026-11-30T10:00:00.000000001Z", "host.name": "n1", "message": "hi\n"}
    assert tail.format_line({**base, "container.name": "web", "process.name": "sh"}) == (
        "2026-11-30T10:00:00.000000001Z n1 web: hi"
    )
    line = tail.format_line({**base, "process.name": "cron", "log.level": "err",
                             "host.hostname": "h2"})  # fmt: skip
    assert line == "2026-11-30T10:00:00.000000001Z h2 cron[err]: hi"
    assert tail.format_line({"event.dataset": "logpipe.forward"}) == "- - logpipe.forward: "


def test_the_follow_window_waits_for_lines_that_land_late() -> None:
    """Elasticsearch away for minutes: lines received then become searchable long after
    their event.created, and the window must still hold them when they do."""
    import io

    from logpipe.timefmt import NS_PER_SECOND, iso_ns

    t0 = 1_796_000_000 * NS_PER_SECOND
    at = lambda s: iso_ns(t0 + int(s * NS_PER_SECOND))  # noqa: E731
    hit = lambda i, s: {"_id": i, "_source": {"event.created": at(s), "message": i}}  # noqa: E731
    # (the time of the poll, what is searchable then)
    polls = [
        (100, []),  # away since the tail began
        (101, [hit("a", 5)]),  # back: the queue is shipped, oldest first
        (102, [hit("a", 5), hit("b", 3)]),  # an older one, from the other sender
        (103, [hit("c", 102)]),  # caught up
    ]
    now = [0]
    asked: list[str] = []

    def search(index: str, body: dict) -> list[dict]:
        [created] = [f["range"]["event.created"]["gte"] for f in body["query"]["bool"]["filter"]]
        asked.append(created)
        return polls[len(asked) - 1][1]

    out = io.StringIO()
    follower = tail.Tail(search, "logs-x", tail.Filters(), out, clock=lambda: t0 + now[0])
    for second, _ in polls:
        now[0] = second * NS_PER_SECOND
        follower.poll()
    assert [line.rsplit(": ", 1)[-1] for line in out.getvalue().splitlines()] == ["a", "b", "c"]
    # From the lookback before the tail began, until something is printed; then from
    # the lookback before the newest printed, however long ago that was received.
    assert asked == [at(-30), at(-30), at(-25), at(-25)]
    assert follower.window_start == at(72)
