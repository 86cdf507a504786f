"""The paced scenarios, logpipe alone (what they measure has no rsyslog counterpart):

* ``e2e``: /dev/log datagrams at a fixed rate into logpipe, shipped to a real
  Elasticsearch (the tests' integ-test-zip node) with the default ``flush_interval``;
  latency from send to searchable, p50 and p99, and CPU per message.
* ``burst``: 10x the sustainable rate for 10 s into the default bounded queue, then the
  normal rate again. A non-blocking sender measures the time it had to wait for room in
  the socket (blocked), every message is either delivered or counted as dropped, and
  recovery is the time from the burst's end until the queue is back to empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Rig, cpu_seconds, free_port, peak_rss_mib, wait_for

# Sends at ``rate`` per second for ``seconds``, then (burst mode) at ``after_rate`` for
# ``after_seconds``; non-blocking, so that waiting for room is measured, not hidden in
# send(). Prints JSON: the send time of each message's block, the seconds spent blocked.
PACED_SENDER = r"""
import json, os, select, socket, sys, time
path, plan = sys.argv[1], json.loads(sys.argv[2])
head = b"<14>Nov 30 10:00:00 bench[4242]: "
body = b"x" * (120 - len(head) - 8)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(path)
s.setblocking(False)
n = blocked = 0
sent_at = []
phase_seconds = []
start = time.perf_counter()
t_phase = start
for rate, seconds in plan:
    block = max(1, rate // 1000)  # messages per millisecond tick
    total = rate * seconds
    i = 0
    while i < total:
        due = t_phase + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        sent_at.append(time.time())
        for _ in range(min(block, total - i)):
            m = head + body + b"%08d" % n
            while True:
                try:
                    s.send(m)
                    break
                except BlockingIOError:
                    t = time.perf_counter()
                    select.select([], [s], [])
                    blocked += time.perf_counter() - t
            n += 1
            i += 1
    phase_seconds.append(time.perf_counter() - t_phase)
    t_phase += seconds
report = {"sent": n, "blocked": blocked, "block": [p[0] // 1000 for p in plan],
          "phase_seconds": phase_seconds}
if len(sys.argv) > 3:  # the send times too (large: read with communicate())
    report["sent_at"] = sent_at
print(json.dumps(report))
"""


def _metric(admin: str, name: str) -> float:
    with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _searchable(count_url: str) -> int:
    try:
        with urllib.request.urlopen(count_url, timeout=5) as resp:
            return json.load(resp)["count"]
    except OSError:
        return 0


def _send_and_watch(
    socket_path: str, count_url: str, rate: int, seconds: int, base: int
) -> tuple[dict[str, Any], list[tuple[float, int]]]:
    """Send at ``rate`` for ``seconds``; poll the searchable count (a search sees only
    refreshed documents) every 20 ms until all are there. Returns the sender's report
    and (time, count beyond ``base``) samples."""
    plan = [[rate, seconds]]
    sender = subprocess.Popen(
        [sys.executable, "-c", PACED_SENDER, socket_path, json.dumps(plan), "times"],
        stdout=subprocess.PIPE,
    )
    total = rate * seconds
    seen: list[tuple[float, int]] = []
    deadline = time.time() + seconds + 120
    count = 0
    while count < total and time.time() < deadline:
        count = _searchable(count_url) - base
        seen.append((time.time(), count))
        time.sleep(0.02)
    return json.loads(sender.communicate()[0]), seen


def e2e(rate: int = 5000, seconds: int = 20, warmup: int = 20) -> dict[str, Any]:
    """devlog -> logpipe -> a real Elasticsearch at ``rate``/s: send-to-searchable
    latency, measured after ``warmup`` seconds at the same rate (a JVM that has just
    started runs its indexing cold, and an operator's cluster has not just started)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from es_local import ElasticsearchNode

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    os.chmod(work, 0o755)
    node = ElasticsearchNode(work / "es")
    node.start()
    socket_path = str(work / "dev-log")
    admin = free_port()
    admin_url = f"http://127.0.0.1:{admin}"
    config = work / "e2e.toml"
    config.write_text(
        f'[service]\ndata_dir = "{work}/data"\n'
        f'[admin]\nlisten = "127.0.0.1:{admin}"\n'
        f'[inputs.devlog]\ntype = "devlog"\npath = "{socket_path}"\n'
        f'[elasticsearch]\nhosts = ["{node.url}"]\ndata_stream = "logs-logpipe-bench"\n'
    )
    count_url = f"{node.url}/logs-logpipe-bench/_count"
    lp: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [sys.executable, "-m", "logpipe", "setup", "-c", str(config)],
            check=True,
            capture_output=True,
        )
        lp = subprocess.Popen(
            [sys.executable, "-m", "logpipe", "worker", "-c", str(config), "--log-level", "warning"]
        )
        wait_for(lambda: os.path.exists(socket_path), 30)
        time.sleep(1)
        if warmup:
            _send_and_watch(socket_path, count_url, rate, warmup, 0)
        base = _searchable(count_url)
        requests0 = _metric(admin_url, "logpipe_bulk_request_duration_seconds_count")
        busy0 = _metric(admin_url, "logpipe_bulk_request_duration_seconds_sum")
        cpu0 = cpu_seconds(lp.pid)
        out, seen = _send_and_watch(socket_path, count_url, rate, seconds, base)
        cpu = cpu_seconds(lp.pid) - cpu0
        requests = _metric(admin_url, "logpipe_bulk_request_duration_seconds_count") - requests0
        busy = _metric(admin_url, "logpipe_bulk_request_duration_seconds_sum") - busy0
        total = rate * seconds
        count = seen[-1][1] if seen else 0
        block = out["block"][0]
        latencies: list[float] = []
        i = 0
        for k, sent in enumerate(out["sent_at"]):
            needed = min((k + 1) * block, total)
            while i < len(seen) and seen[i][1] < needed:
                i += 1
            if i == len(seen):
                break
            latencies.append(seen[i][0] - sent)
        return {
            "messages": count,
            "lost": total - count,
            "rate": rate,
            "latency_p50_s": round(_percentile(latencies, 0.50), 3),
            "latency_p99_s": round(_percentile(latencies, 0.99), 3),
            "cpu_us_per_message": round(cpu / max(count, 1) * 1e6, 2),
            "peak_rss_mib": round(peak_rss_mib(lp.pid), 1),
            "sender_blocked_s": round(out["blocked"], 3),
            "bulk_requests": int(requests),
            "bulk_mean_s": round(busy / max(requests, 1), 3),
        }
    finally:
        if lp is not None:
            lp.terminate()
            lp.wait(30)
        node.stop()


def burst(sustainable: int, seconds: int = 10, after: int = 10) -> dict[str, Any]:
    """10x ``sustainable``/s for ``seconds`` into the default bounded queue, then half
    the sustainable rate for ``after`` seconds."""
    work = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    socket_path = str(work / "dev-log")
    # The default queue (drop_newest when full), and shed_when_behind: the reader drops
    # what waits, counted, when senders outpace it, so the app never waits.
    devlog = f'[inputs.devlog]\ntype = "devlog"\npath = "{socket_path}"\nshed_when_behind = true\n'
    rig = Rig(work, devlog, queue_toml="")
    admin = rig.admin
    try:
        wait_for(lambda: os.path.exists(socket_path), 20)
        time.sleep(1)
        cpu0 = cpu_seconds(rig.lp.pid)
        plan = [[sustainable * 10, seconds], [sustainable // 2, after]]
        t0 = time.time()
        sender = subprocess.Popen(
            [sys.executable, "-c", PACED_SENDER, socket_path, json.dumps(plan)],
            stdout=subprocess.PIPE,
        )
        burst_end = t0 + seconds
        queue: list[tuple[float, float]] = []
        while sender.poll() is None:
            try:
                queue.append((time.time(), _metric(admin, "logpipe_queue_events")))
            except OSError:
                pass
            time.sleep(0.1)
        out = json.loads(sender.communicate()[0])
        sent = out["sent"]
        markers_before = -1.0

        def settled() -> bool:
            nonlocal markers_before
            markers = _metric(admin, "logpipe_loss_markers_total")
            dropped = _metric(admin, "logpipe_dropped_events_total")
            done = rig.delivered() - markers >= sent - dropped and markers == markers_before
            markers_before = markers
            return done

        wait_for(settled, 120)
        cpu = cpu_seconds(rig.lp.pid) - cpu0
        dropped = _metric(admin, "logpipe_dropped_events_total")
        markers = _metric(admin, "logpipe_loss_markers_total")
        delivered = rig.delivered() - markers
        # Recovered: the first moment after the burst when the queue is empty again.
        recovered = next((t for t, q in queue if t >= burst_end and q < 2000), None)
        return {
            "sent": sent,
            "delivered": int(delivered),
            "dropped": int(dropped),
            "unaccounted": int(sent - delivered - dropped),
            "loss_markers": int(markers),
            "burst_rate": sustainable * 10,
            # What the sender managed: it may not reach the asked rate on its own core.
            "burst_rate_sent": round(sustainable * 10 * seconds / out["phase_seconds"][0]),
            "sender_blocked_s": round(out["blocked"], 3),
            "recovery_s": round(recovered - burst_end, 2) if recovered else None,
            "cpu_us_per_message": round(cpu / max(sent, 1) * 1e6, 2),
            "peak_rss_mib": round(peak_rss_mib(rig.lp.pid), 1),
        }
    finally:
        rig.close()
