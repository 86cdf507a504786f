"""MultilineJoiner: modes, start_pattern, keys, caps, expiry, and never losing a line."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.parsers.multiline import MODES, MultilineJoiner

NS = 1_000_000_000

# A real Java stack trace of exactly 30 lines: header, 13 frames, a cause, 14 frames, "more".
JAVA_TRACE = [
    'Exception in thread "main" java.lang.IllegalStateException: Failed to load order 42',
    "\tat com.shop.orders.OrderService.load(OrderService.java:87)",
    "\tat com.shop.orders.OrderService.process(OrderService.java:52)",
    "\tat com.shop.orders.OrderController.post(OrderController.java:31)",
    "\tat jdk.internal.reflect.GeneratedMethodAccessor12.invoke(Unknown Source)",
    "\tat java.base/java.lang.reflect.Method.invoke(Method.java:568)",
    "\tat org.springframework.web.method.support.InvocableHandlerMethod.doInvoke("
    "InvocableHandlerMethod.java:205)",
    "\tat org.springframework.web.servlet.DispatcherServlet.doDispatch("
    "DispatcherServlet.java:1067)",
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)",
    "\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:764)",
    "\tat org.apache.catalina.core.ApplicationFilterChain.doFilter("
    "ApplicationFilterChain.java:162)",
    "\tat org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:197)",
    "\tat org.apache.tomcat.util.threads.ThreadPoolExecutor.runWorker("
    "ThreadPoolExecutor.java:1191)",
    "\tat java.base/java.lang.Thread.run(Thread.java:833)",
    "Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not "
    "available, request timed out after 30000ms.",
    "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)",
    "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:197)",
    "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:162)",
    "\tat com.zaxxer.hikari.HikariDataSource.getConnection(HikariDataSource.java:128)",
    "\tat org.hibernate.engine.jdbc.connections.internal.DatasourceConnectionProviderImpl"
    ".getConnection(DatasourceConnectionProviderImpl.java:122)",
    "\tat org.hibernate.internal.NonContextualJdbcConnectionAccess.obtainConnection("
    "NonContextualJdbcConnectionAccess.java:38)",
    "\tat org.hibernate.resource.jdbc.internal.LogicalConnectionManagedImpl.acquireConnectionIf"
    "Needed(LogicalConnectionManagedImpl.java:108)",
    "\tat org.hibernate.resource.jdbc.internal.LogicalConnectionManagedImpl.getPhysicalConnection("
    "LogicalConnectionManagedImpl.java:138)",
    "\tat org.hibernate.engine.jdbc.internal.StatementPreparerImpl.connection("
    "StatementPreparerImpl.java:50)",
    "\tat org.hibernate.loader.Loader.executeQueryStatement(Loader.java:2116)",
    "\tat org.hibernate.loader.Loader.doQuery(Loader.java:949)",
    "\tat org.hibernate.loader.Loader.doList(Loader.java:2692)",
    "\tat com.shop.orders.OrderRepository.findById(OrderRepository.java:44)",
    "\tat com.shop.orders.OrderService.load(OrderService.java:80)",
    "\t... 12 more",
]
NEXT_LINE = "2024-05-01 12:00:01.123 INFO  [main] c.s.o.OrderController - request done"

# A Python traceback with both kinds of chaining (3.11 carets included).
PY_TRACE = [
    "Traceback (most recent call last):",
    '  File "/app/config.py", line 10, in load',
    '    return cfg["port"]',
    "           ~~~^^^^^^^^",
    "KeyError: 'port'",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    '  File "/app/config.py", line 12, in load',
    '    raise ConfigError("no port")',
    "app.config.ConfigError: no port",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "Traceback (most recent call last):",
    '  File "/app/main.py", line 20, in <module>',
    "    start()",
    '  File "/app/main.py", line 15, in start',
    '    raise RuntimeError("startup failed") from exc',
    "RuntimeError: startup failed",
]


def run(joiner: MultilineJoiner, lines: list[tuple[Hashable, str]]) -> list[Any]:
    """Feed ``(key, text)`` lines (line i at time i), then flush every key.

    Returns ``(key, text, time_ns, split)`` for every event, in the order they completed.
    """
    out: list[Any] = []
    keys: dict[Hashable, None] = {}
    for i, (key, text) in enumerate(lines):
        keys[key] = None
        out.extend((key, *event) for event in joiner.feed(key, text, i, i))
    for key in keys:
        event = joiner.flush(key)
        if event is not None:
            out.append((key, *event))
    assert len(joiner) == 0
    return out


def one_key(lines: list[str]) -> list[tuple[Hashable, str]]:
    return [("k", line) for line in lines]


# (name, options, lines as (key, text), events as (key, text, time_ns of first line, split)).
CASES: list[tuple[str, dict[str, Any], list[tuple[Hashable, str]], list[Any]]] = [
    (
        "java: a 30-line trace then a normal line is two events",
        {"mode": "java"},
        one_key([*JAVA_TRACE, NEXT_LINE]),
        [("k", "\n".join(JAVA_TRACE), 0, False), ("k", NEXT_LINE, 30, False)],
    ),
    (
        "java: single lines stay single",
        {"mode": "java"},
        one_key(["a", "b", "c"]),
        [("k", "a", 0, False), ("k", "b", 1, False), ("k", "c", 2, False)],
    ),
    (
        "java: Caused by / Suppressed / ... N more, indented or not, continue",
        {"mode": "java"},
        one_key(
            [
                "java.lang.Exception: outer",
                "\tat A.a(A.java:1)",
                "\tSuppressed: java.io.IOException: close failed",
                "\t\tat B.b(B.java:2)",
                "Suppressed: java.io.IOException: second",
                "  Caused by: java.lang.Error: inner",
                "Caused by: java.lang.Error: root",
                "... 3 more",
                "    ... 5 common frames omitted",
                "done",
            ]
        ),
        [
            (
                "k",
                "java.lang.Exception: outer\n\tat A.a(A.java:1)\n"
                "\tSuppressed: java.io.IOException: close failed\n\t\tat B.b(B.java:2)\n"
                "Suppressed: java.io.IOException: second\n  Caused by: java.lang.Error: inner\n"
                "Caused by: java.lang.Error: root\n... 3 more\n    ... 5 common frames omitted",
                0,
                False,
            ),
            ("k", "done", 9, False),
        ],
    ),
    (
        "java: a whitespace-only line continues, an empty one starts an event",
        {"mode": "java"},
        one_key(["head", "   ", "", "\tat X"]),
        [("k", "head\n   ", 0, False), ("k", "\n\tat X", 2, False)],
    ),
    (
        "java: a continuation with nothing pending starts an event",
        {"mode": "java"},
        one_key(["\tat A.a(A.java:1)", "\tat B.b(B.java:2)", "next"]),
        [("k", "\tat A.a(A.java:1)\n\tat B.b(B.java:2)", 0, False), ("k", "next", 2, False)],
    ),
    (
        "java: interleaved keys do not mix",
        {"mode": "java"},
        [
            (("c1", "stderr"), "java.lang.Error: one"),
            (("c2", "stderr"), "java.lang.Error: two"),
            (("c1", "stderr"), "\tat A.a(A.java:1)"),
            (("c1", "stdout"), "hello"),
            (("c2", "stderr"), "\tat B.b(B.java:2)"),
            (("c1", "stderr"), "after one"),
            (("c2", "stderr"), "after two"),
        ],
        [
            (("c1", "stderr"), "java.lang.Error: one\n\tat A.a(A.java:1)", 0, False),
            (("c2", "stderr"), "java.lang.Error: two\n\tat B.b(B.java:2)", 1, False),
            (("c1", "stderr"), "after one", 5, False),
            (("c2", "stderr"), "after two", 6, False),
            (("c1", "stdout"), "hello", 3, False),
        ],
    ),
    (
        "python: chained traceback is one event; lines around it are single events",
        {"mode": "python"},
        one_key(["ERROR:root:startup failed", *PY_TRACE, "INFO:root:exiting"]),
        [
            ("k", "ERROR:root:startup failed", 0, False),
            ("k", "\n".join(PY_TRACE), 1, False),
            ("k", "INFO:root:exiting", 22, False),
        ],
    ),
    (
        "python: the exception line ends the traceback and belongs to it",
        {"mode": "python"},
        one_key(["Traceback (most recent call last):", '  File "x.py", line 1', "E: boom", "x"]),
        [
            ("k", 'Traceback (most recent call last):\n  File "x.py", line 1\nE: boom', 0, False),
            ("k", "x", 3, False),
        ],
    ),
    (
        "python: one blank line after the exception stays with it, a second does not",
        {"mode": "python"},
        one_key(["Traceback (most recent call last):", "  f()", "E: boom", "", "", "next"]),
        [
            ("k", "Traceback (most recent call last):\n  f()\nE: boom\n", 0, False),
            ("k", "", 4, False),
            ("k", "next", 5, False),
        ],
    ),
    (
        "python: indented and whitespace-only lines outside a traceback are single",
        {"mode": "python"},
        one_key(["a", "  indented", "   ", "", "During handling of the above exception, x:"]),
        [
            ("k", "a", 0, False),
            ("k", "  indented", 1, False),
            ("k", "   ", 2, False),
            ("k", "", 3, False),
            ("k", "During handling of the above exception, x:", 4, False),
        ],
    ),
    (
        "python: a whitespace-only line inside a traceback continues it",
        {"mode": "python"},
        one_key(["Traceback (most recent call last):", "  f()", "  ", "E: x"]),
        [("k", "Traceback (most recent call last):\n  f()\n  \nE: x", 0, False)],
    ),
    (
        "python: a new traceback before the exception line starts a new event",
        {"mode": "python"},
        one_key(
            [
                "Traceback (most recent call last):",
                "  f()",
                "Traceback (most recent call last):",
                "  g()",
                "E: y",
            ]
        ),
        [
            ("k", "Traceback (most recent call last):\n  f()", 0, False),
            ("k", "Traceback (most recent call last):\n  g()\nE: y", 2, False),
        ],
    ),
    (
        "python: back-to-back tracebacks are two events",
        {"mode": "python"},
        one_key(["Traceback (most recent call last):", "  f()", "E: 1"] * 2),
        [
            ("k", "Traceback (most recent call last):\n  f()\nE: 1", 0, False),
            ("k", "Traceback (most recent call last):\n  f()\nE: 1", 3, False),
        ],
    ),
    (
        "python: an exception group (3.11) is one event",
        {"mode": "python"},
        one_key(
            [
                "  + Exception Group Traceback (most recent call last):",
                '  |   File "<stdin>", line 1, in <module>',
                "  | ExceptionGroup: two (2 sub-exceptions)",
                "  +-+---------------- 1 ----------------",
                "    | ValueError: a",
                "    +------------------------------------",
                "done",
            ]
        ),
        [
            (
                "k",
                "  + Exception Group Traceback (most recent call last):\n"
                '  |   File "<stdin>", line 1, in <module>\n'
                "  | ExceptionGroup: two (2 sub-exceptions)\n"
                "  +-+---------------- 1 ----------------\n"
                "    | ValueError: a\n"
                "    +------------------------------------\n"
                "done",
                0,
                False,
            ),
        ],
    ),
    (
        "python: interleaved keys keep their own state",
        {"mode": "python"},
        [
            ("a", "Traceback (most recent call last):"),
            ("b", "plain b"),
            ("a", "  f()"),
            ("b", "Traceback (most recent call last):"),
            ("a", "E: a"),
            ("b", "  g()"),
            ("a", "after a"),
            ("b", "E: b"),
        ],
        [
            ("b", "plain b", 1, False),
            ("a", "Traceback (most recent call last):\n  f()\nE: a", 0, False),
            ("a", "after a", 6, False),
            ("b", "Traceback (most recent call last):\n  g()\nE: b", 3, False),
        ],
    ),
    (
        "indented: space or tab continues, a whitespace-only line too",
        {"mode": "indented"},
        one_key(["a", " b", "\tc", "  ", "d", "e", "  f"]),
        [("k", "a\n b\n\tc\n  ", 0, False), ("k", "d", 4, False), ("k", "e\n  f", 5, False)],
    ),
    (
        "start_pattern: a match starts an event, anything else continues",
        {"start_pattern": r"^\d{4}-\d{2}-\d{2} "},
        one_key(
            [
                "2024-05-01 12:00:00 ERROR failed",
                "details: x",
                "   ",
                "",
                "2024-05-01 12:00:01 INFO ok",
            ]
        ),
        [
            ("k", "2024-05-01 12:00:00 ERROR failed\ndetails: x\n   \n", 0, False),
            ("k", "2024-05-01 12:00:01 INFO ok", 4, False),
        ],
    ),
    (
        "start_pattern is searched, not matched at the start only",
        {"start_pattern": "BEGIN"},
        one_key(["x BEGIN", "y", "z BEGIN"]),
        [("k", "x BEGIN\ny", 0, False), ("k", "z BEGIN", 2, False)],
    ),
    (
        "max_lines: the event is split, every piece says so",
        {"mode": "indented", "max_lines": 3},
        one_key(["a", " 1", " 2", " 3", " 4", " 5", " 6", "b"]),
        [
            ("k", "a\n 1\n 2", 0, True),
            ("k", " 3\n 4\n 5", 3, True),
            ("k", " 6", 6, True),
            ("k", "b", 7, False),
        ],
    ),
    (
        "max_lines: exactly at the cap is not a split",
        {"mode": "indented", "max_lines": 3},
        one_key(["a", " 1", " 2", "b"]),
        [("k", "a\n 1\n 2", 0, False), ("k", "b", 3, False)],
    ),
    (
        "max_bytes counts UTF-8 bytes and newlines",
        # "é" is 2 bytes: "aé\n é" is 3 + 1 + 3 = 7 bytes.
        {"mode": "indented", "max_bytes": 7},
        one_key(["aé", " é", " x", "b"]),
        [("k", "aé\n é", 0, True), ("k", " x", 2, True), ("k", "b", 3, False)],
    ),
    (
        "max_bytes: one line over the cap is kept whole",
        {"mode": "indented", "max_bytes": 4},
        one_key(["abcdefgh", " i", "j"]),
        [("k", "abcdefgh", 0, True), ("k", " i", 1, True), ("k", "j", 2, False)],
    ),
    (
        "python: a traceback split by the cap keeps its state",
        {"mode": "python", "max_lines": 2},
        one_key(["Traceback (most recent call last):", "  f()", "  g()", "E: x", "next"]),
        [
            ("k", "Traceback (most recent call last):\n  f()", 0, True),
            ("k", "  g()\nE: x", 2, True),
            ("k", "next", 4, False),
        ],
    ),
]


@pytest.mark.parametrize(
    ("options", "lines", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_join(
    options: dict[str, Any], lines: list[tuple[Hashable, str]], expected: list[Any]
) -> None:
    assert run(MultilineJoiner(**options), lines) == expected


def test_java_trace_is_emitted_when_the_next_line_arrives() -> None:
    assert len(JAVA_TRACE) == 30
    joiner = MultilineJoiner(mode="java")
    returns = [joiner.feed("k", line, i, i) for i, line in enumerate(JAVA_TRACE)]
    assert returns == [[]] * 30
    assert len(joiner) == 1
    assert joiner.feed("k", NEXT_LINE, 30, 30) == [("\n".join(JAVA_TRACE), 0, False)]
    assert joiner.flush("k") == (NEXT_LINE, 30, False)
    assert joiner.flush("k") is None
    assert len(joiner) == 0


def test_python_single_lines_are_not_held() -> None:
    joiner = MultilineJoiner(mode="python")
    assert joiner.feed("k", "hello", 7, 100) == [("hello", 7, False)]
    assert len(joiner) == 0


def test_expired_measures_from_the_last_line() -> None:
    joiner = MultilineJoiner(mode="java", timeout_ns=2 * NS)
    joiner.feed("a", "java.lang.Error: x", 11, 100 * NS)
    joiner.feed("a", "\tat A.a(A.java:1)", 12, 101 * NS)
    joiner.feed("b", "plain", 13, 102 * NS)
    assert joiner.expired(103 * NS) == []  # exactly the timeout after a's last line: not more
    assert joiner.expired(103 * NS + 1) == [
        ("a", "java.lang.Error: x\n\tat A.a(A.java:1)", 11, False)
    ]
    assert len(joiner) == 1
    assert joiner.expired(104 * NS) == []
    assert joiner.expired(104 * NS + 1) == [("b", "plain", 13, False)]
    assert len(joiner) == 0
    # The key starts afresh.
    assert joiner.feed("a", "next", 14, 105 * NS) == []
    assert joiner.flush("a") == ("next", 14, False)


def test_expired_python_chain_waits_for_the_marker() -> None:
    joiner = MultilineJoiner(mode="python", timeout_ns=NS)
    for i, line in enumerate(PY_TRACE[:6]):  # up to the blank line after "KeyError"
        assert joiner.feed("k", line, i, i * NS // 10) == []
    assert joiner.expired(NS) == []
    assert joiner.expired(2 * NS) == [("k", "\n".join(PY_TRACE[:6]), 0, False)]


def test_expired_reports_a_split_piece() -> None:
    joiner = MultilineJoiner(mode="indented", max_lines=1, timeout_ns=0)
    assert joiner.feed("k", "a", 1, 1) == []
    assert joiner.feed("k", " b", 2, 2) == [("a", 1, True)]
    assert joiner.expired(3) == [("k", " b", 2, True)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of mode or start_pattern"),
        ({"mode": "java", "start_pattern": "x"}, "exactly one of mode or start_pattern"),
        ({"mode": "go"}, "mode must be one of java, python, indented, not 'go'"),
        ({"start_pattern": "("}, "start_pattern '(' is not a valid regex"),
        ({"mode": "java", "max_lines": 0}, "max_lines must be at least 1"),
        ({"mode": "java", "max_bytes": 0}, "max_bytes must be at least 1"),
        ({"mode": "java", "timeout_ns": -1}, "timeout must not be negative"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"^multiline: ") as info:
        MultilineJoiner(**options)
    assert message in str(info.value)


# Lines that exercise every rule, mixed with arbitrary text (never a "\n": one line each).
LINE = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\t",
            "plain",
            "\tat A.a(A.java:1)",
            "Caused by: x",
            "Suppressed: y",
            "... 3 more",
            "Traceback (most recent call last):",
            "  + Exception Group Traceback (most recent call last):",
            '  File "x.py", line 1',
            "ValueError: boom",
            "During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:",
            "2024-05-01 start",
            "é ü 日本",
        ]
    ),
    st.text(st.characters(blacklist_characters="\n"), max_size=12),
)
OPTIONS = st.one_of(
    st.builds(lambda mode: {"mode": mode}, st.sampled_from(MODES)),
    st.just({"start_pattern": r"^\d{4}-"}),
)


@settings(max_examples=300, deadline=None)
@given(
    options=OPTIONS,
    max_lines=st.integers(1, 6),
    max_bytes=st.integers(1, 80),
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), LINE, st.integers(0, 3 * NS), st.booleans()),
        max_size=60,
    ),
)
def test_never_loses_or_duplicates_a_line(
    options: dict[str, Any],
    max_lines: int,
    max_bytes: int,
    steps: list[tuple[str, str, int, bool]],
) -> None:
    joiner = MultilineJoiner(**options, max_lines=max_lines, max_bytes=max_bytes, timeout_ns=NS)
    fed: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}
    got: dict[str, list[tuple[str, int, bool]]] = {"a": [], "b": []}
    now = 0
    for i, (key, text, gap, check_expiry) in enumerate(steps):
        now += gap
        if check_expiry:
            for k, *event in joiner.expired(now):
                got[k].append(tuple(event))  # type: ignore[arg-type]
        fed[key].append((text, i))
        got[key].extend(joiner.feed(key, text, i, now))
    for key in ("a", "b"):
        event = joiner.flush(key)
        if event is not None:
            got[key].append(event)
    assert len(joiner) == 0
    for key in ("a", "b"):
        lines: list[str] = []
        for text, time_ns, _ in got[key]:
            # Each event is stamped with the time of its own first line.
            assert time_ns == fed[key][len(lines)][1]
            parts = text.split("\n")
            assert len(parts) <= max_lines
            assert len(parts) == 1 or len(text.encode("utf-8", "surrogatepass")) <= max_bytes
            lines.extend(parts)
        assert lines == [text for text, _ in fed[key]]


def test_java_exception_header_after_a_logger_line_continues_it() -> None:
    joiner = MultilineJoiner(mode="java")
    lines = [
        "2026-11-29 10:00:00 ERROR Invoicer - invoice 42 failed",
        "java.lang.IllegalStateException: ledger closed",
        "\tat com.example.Ledger.post(Ledger.java:100)",
        'Exception in thread "main" java.lang.RuntimeException: separate',
        "\tat com.example.Main.main(Main.java:5)",
        "next line",
    ]
    out = [e for n, line in enumerate(lines) for e in joiner.feed("k", line, n, n)]
    assert [text for text, _first, _split in out] == ["\n".join(lines[:3]), "\n".join(lines[3:5])]
