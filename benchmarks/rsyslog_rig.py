"""rsyslogd as the benchmarks' yardstick: Debian's rsyslogd with its own config and work
directory, never the system's, shipping with omelasticsearch in bulk to the same
counting sink as logpipe, with the same fields (an ECS-shaped JSON template)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import ROOT, free_port, sink_count, wait_for

# The fields logpipe's devlog events carry that rsyslog can make from a datagram.
ECS_TEMPLATE = """
template(name="ecs" type="list" option.jsonf="on") {
  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="event.created" name="timegenerated" dateFormat="rfc3339" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
  property(outname="host.hostname" name="hostname" format="jsonf")
  property(outname="process.name" name="programname" format="jsonf")
  property(outname="process.pid" name="procid" format="jsonf")
  property(outname="log.syslog.facility.name" name="syslogfacility-text" format="jsonf")
  property(outname="log.syslog.severity.name" name="syslogseverity-text" format="jsonf")
}
"""


# For a Docker json-file line: mmjsonparse takes the whole line as JSON (no @cee:
# cookie), and the template picks the fields logpipe's files input makes of it.
# (rsyslog keeps the "\n" that ends each "log"; logpipe strips it.)
JSON_FILE_RULES = 'module(load="mmjsonparse")\naction(type="mmjsonparse" cookie="" useRawMsg="on")'
JSON_FILE_TEMPLATE = """
template(name="ecs" type="list" option.jsonf="on") {
  property(outname="@timestamp" name="$!time" format="jsonf")
  property(outname="event.created" name="timegenerated" dateFormat="rfc3339" format="jsonf")
  property(outname="message" name="$!log" format="jsonf")
  property(outname="logpipe.stream" name="$!stream" format="jsonf")
  property(outname="log.file.path" name="$!metadata!filename" format="jsonf")
}
"""


class RsyslogRig:
    """A counting sink and an rsyslogd reading ``inputs`` (rsyslog config: imuxsock on a
    socket, imtcp on a port) into it; ``ready`` says when the input is there."""

    def __init__(
        self,
        work: Path,
        inputs: str,
        ready: Callable[[], bool],
        template: str = ECS_TEMPLATE,
        rules: str = "",
    ) -> None:
        self.port = free_port()
        self.sink_url = f"http://127.0.0.1:{self.port}"
        (work / "rsyslog-work").mkdir(parents=True, exist_ok=True)
        config = work / "rsyslog.conf"
        config.write_text(
            f'global(workDirectory="{work / "rsyslog-work"}" maxMessageSize="64k")\n'
            f"{inputs}\n"
            'module(load="omelasticsearch")\n'
            f"{template}\n{rules}\n"
            f'action(type="omelasticsearch" server="127.0.0.1" serverport="{self.port}" '
            'template="ecs" searchIndex="bench" bulkmode="on" maxbytes="5m" '
            'esVersion.major="8" queue.type="LinkedList" queue.size="100000" '
            'queue.dequeueBatchSize="2000" action.resumeRetryCount="-1")\n'
        )
        self.sink = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "bulk_sink.py"), str(self.port)]
        )
        wait_for(lambda: sink_count(self.sink_url) >= 0, 20)
        self.proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(config), "-i", str(work / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(ready, 20)

    @staticmethod
    def imuxsock(socket_path: str) -> str:
        return (
            'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{socket_path}" RateLimit.Interval="0")'
        )

    @staticmethod
    def imtcp(port: int) -> str:
        return f'module(load="imtcp")\ninput(type="imtcp" address="127.0.0.1" port="{port}")'

    @staticmethod
    def imfile(path: str) -> str:
        return f'module(load="imfile")\ninput(type="imfile" File="{path}" Tag="docker")'

    @property
    def pid(self) -> int:
        return self.proc.pid

    def delivered(self) -> int:
        return sink_count(self.sink_url)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.sink.terminate()
        self.sink.wait(10)
