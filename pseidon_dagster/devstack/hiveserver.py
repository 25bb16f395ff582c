"""A real HiveServer2 on loopback for the tests and the demo: Spark's Thrift Server from the pyspark wheel.

    python -m pseidon_dagster.devstack.hiveserver start --state-dir var/services --port 10000
    python -m pseidon_dagster.devstack.hiveserver stop --state-dir var/services

It runs `spark-submit --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2` with local[1], an embedded
Derby metastore (<state_dir>/metastore_db) and a warehouse under <state_dir>/warehouse, bound to 127.0.0.1 only,
without the Spark UI. It needs Java 17+ and `pip install pyspark` (the project's [hive] extra). Start-up takes
25-60 s and the JVM uses ~400 MB. The server speaks the HiveServer2 Thrift protocol (SASL PLAIN, any user and
password), so the catalog talks to it exactly as it talks to a production HiveServer2.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .services import port_open as _port_open

HOST = "127.0.0.1"
DEFAULT_PORT = 10000
START_TIMEOUT_S = 180.0
PID_FILE = "hive.json"
LOG_FILE = "hive.log"
MAIN_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


class HiveServerError(RuntimeError):
    pass


def spark_home() -> Path:
    """The pyspark package directory (it holds bin/spark-submit and jars/, including the Thrift Server's)."""
    try:
        import pyspark
    except ImportError as e:
        raise HiveServerError("pyspark is not installed: pip install 'pseidon-dagster[hive]' (or pyspark)") from e
    home = Path(pyspark.__file__).resolve().parent
    jars = home / "jars"
    if not (home / "bin" / "spark-submit").exists() or not any(jars.glob("spark-hive-thriftserver_*.jar")):
        raise HiveServerError(f"{home} has no bin/spark-submit or no spark-hive-thriftserver jar")
    return home


def command(state_dir: Path, port: int, memory: str = "512m") -> list[str]:
    home = spark_home()
    sd = state_dir.resolve()
    metastore = f"jdbc:derby:;databaseName={sd / 'metastore_db'};create=true"
    conf = {
        "spark.sql.warehouse.dir": str(sd / "warehouse"),
        "spark.driver.memory": memory,
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
    }
    hiveconf = {
        "hive.server2.thrift.port": str(port),
        "hive.server2.thrift.bind.host": HOST,
        "hive.server2.transport.mode": "binary",
        "hive.server2.authentication": "NONE",
        "javax.jdo.option.ConnectionURL": metastore,
        "hive.metastore.warehouse.dir": str(sd / "warehouse"),
    }
    args = [str(home / "bin" / "spark-submit"), "--class", MAIN_CLASS, "--master", "local[1]",
            "--name", f"pseidon-hive-{port}"]
    for k, v in conf.items():
        args += ["--conf", f"{k}={v}"]
    args.append("spark-internal")
    for k, v in hiveconf.items():
        args += ["--hiveconf", f"{k}={v}"]
    return args


def ping(port: int, host: str = HOST, timeout: float = 10.0) -> bool:
    """True when a HiveServer2 session on host:port answers SELECT 1."""
    if not _port_open(port, host):
        return False
    from ..core.hive import HiveCatalog, HiveTarget

    try:  # the product's client: it closes what it opened even when the server is half up
        catalog = HiveCatalog(HiveTarget(host, port), "pseidon", retries=0, timeout_s=timeout)
        return catalog.execute("SELECT 1", fetch=True, what="SELECT 1") == [(1,)]
    except Exception:  # noqa: BLE001 - "not ready yet" comes in many shapes (CatalogError, Thrift protocol errors)
        return False


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except FileNotFoundError:
        return "(no log)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def start_hive(state_dir: Path, port: int = DEFAULT_PORT, timeout: float = START_TIMEOUT_S,
               memory: str = "512m") -> dict:
    """Start Spark's Thrift Server on 127.0.0.1:PORT unless something already answers there.

    Returns {"name": "hive", "port": port, "started": bool, "pid": int | None}; raises HiveServerError (with the
    log's tail) when the server does not answer SELECT 1 within TIMEOUT seconds."""
    state_dir = Path(state_dir)
    if _port_open(port):
        return {"name": "hive", "port": port, "started": False, "pid": None}
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / LOG_FILE
    env = dict(os.environ)
    home = spark_home()
    env.update(SPARK_HOME=str(home), SPARK_LOCAL_IP=HOST, SPARK_LOCAL_HOSTNAME="localhost",
               SPARK_LOG_DIR=str(state_dir.resolve()), SPARK_CONF_DIR=str(state_dir.resolve() / "spark-conf"))
    env.pop("PYSPARK_PYTHON", None)
    (state_dir / "spark-conf").mkdir(exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(command(state_dir, port, memory), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(state_dir), env=env, start_new_session=True)
    (state_dir / PID_FILE).write_text(json.dumps({"pid": proc.pid, "port": port}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (state_dir / PID_FILE).unlink(missing_ok=True)
            raise HiveServerError(f"the Thrift Server exited with code {proc.returncode}; "
                                  f"{log_path}:\n{_tail(log_path)}")
        if ping(port):
            return {"name": "hive", "port": port, "started": True, "pid": proc.pid}
        time.sleep(1.0)
    _kill_group(proc.pid)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    raise HiveServerError(f"the Thrift Server did not answer SELECT 1 on {HOST}:{port} within {timeout:.0f}s; "
                          f"{log_path}:\n{_tail(log_path)}")


def _kill_group(pid: int, grace_s: float = 20.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_hive(state_dir: Path) -> bool:
    """Stop the server that start_hive started in STATE_DIR (its whole process group). False if none was running."""
    f = Path(state_dir) / PID_FILE
    if not f.exists():
        return False
    pid = json.loads(f.read_text()).get("pid")
    f.unlink(missing_ok=True)
    if not pid or not _alive(pid):
        return False
    _kill_group(pid)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pseidon_dagster.devstack.hiveserver", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--state-dir", default="var/services/hive")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    args = ap.parse_args(argv)
    state = Path(args.state_dir)
    if args.action == "start":
        try:
            info = start_hive(state, args.port, args.timeout)
        except HiveServerError as e:
            print(f"hive: {e}", file=sys.stderr)
            return 1
        how = f"started (pid {info['pid']})" if info["started"] else "already running"
        print(f"hive   {HOST}:{args.port}  {how}")
    elif args.action == "stop":
        print("hive   stopped" if stop_hive(state) else "hive   was not running (from this state dir)")
    else:
        up = ping(args.port)
        print(f"hive   {HOST}:{args.port}  {'up' if up else 'down'}")
        return 0 if up else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
