"""vagrant/: what can be checked without VirtualBox or a server.

- The provisioning scripts parse (`bash -n`) and are shellcheck clean; the Vagrantfile parses (`ruby -c`) and, loaded
  with a stand-in for Vagrant's API, defines the seed's boxes whose addresses agree with the scripts' defaults,
  vagrant/config/pseidon.edn. (The ETL box installs the systemd units of deploy/, checked by
  tests/integration/system/test_deploy.py.)
- Every helper script answers --help, and the Vagrant defaults are refused under PSEIDON_LOOPBACK_ONLY / CI (so CI
  can never reach the boxes' network).
- No file under tests/, .ci/ or bench/ names a private-network address.
Outside CI the shellcheck and ruby checks are skipped when the tool is missing; under CI=true they fail instead
(.ci/run installs both). The scripts against tansu, Redis, MariaDB and Hive: tests/integration/system/test_vagrant.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests import REPO_ROOT as REPO

VAGRANT = REPO / "vagrant"
SCRIPTS = VAGRANT / "scripts"
SHELL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))
PY_SCRIPTS = sorted(SCRIPTS.glob("*.py"))
# A private IPv4 address (10/8, 172.16/12, 192.168/16), written so that this file does not contain one itself.
PRIVATE = re.compile(r"(?<![\d.])(?:10(?:\.\d{1,3}){3}|192\.168(?:\.\d{1,3}){2}"
                     r"|172\.(?:1[6-9]|2\d|3[01])(?:\.\d{1,3}){2})(?![\d.])")


def _load_cluster():
    """vagrant/scripts/cluster.py (the defaults the scripts use), under a name of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vagrant_scripts_cluster", SCRIPTS / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cluster = _load_cluster()


def tool(name: str) -> str:
    """The path of NAME; skip the test when it is missing, except under CI where it must be there."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing under CI (.ci/run installs it)")
        pytest.skip(f"{name} not installed (apt-get install {name})")
    return path


def loopback_env(**extra: str) -> dict[str, str]:
    """The environment of a script run: loopback only, no box settings file, the Vagrant defaults unset."""
    env = {k: v for k, v in os.environ.items() if k not in cluster.VAGRANT}
    env.update(PSEIDON_LOOPBACK_ONLY="1", PSEIDON_SCRIPTS_ENV=os.devnull, PYTHON=sys.executable, **extra)
    return env


def run(args: list, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [str(a) for a in args]
    if cmd[0].endswith(".py"):
        cmd.insert(0, sys.executable)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


# --- static checks ---------------------------------------------------------------------------------------------

def test_the_seed_scripts_exist():
    names = {p.name for p in SCRIPTS.iterdir()}
    for name in ["print-kafka-messages.py", "push-kafka-messages.py", "test-kafka.py", "create_topic.sh",
                 "create_topic_remote.sh", "etl2-integration-test.sh", "zookeeper.sh", "services.sh", "broker.sh",
                 "etl.sh"]:
        assert name in names
        assert os.access(SCRIPTS / name, os.X_OK), f"{name} is not executable"


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_shellcheck_clean():
    res = subprocess.run([tool("shellcheck"), "-x", *map(str, SHELL_SCRIPTS)], capture_output=True, text=True,
                         cwd=SCRIPTS)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("script", PY_SCRIPTS, ids=lambda p: p.name)
def test_python_scripts_compile(script):
    compile(script.read_text(), str(script), "exec")


def test_vagrantfile_syntax():
    res = subprocess.run([tool("ruby"), "-c", str(VAGRANT / "Vagrantfile")], capture_output=True, text=True)
    assert res.returncode == 0 and "Syntax OK" in res.stdout, res.stdout + res.stderr


# Loads the Vagrantfile with a stand-in for Vagrant's configuration API and prints what it defines as JSON.
RUBY_STUB = r"""
require "json"
class Rec
  attr_reader :calls, :subs
  def initialize; @calls = []; @subs = {}; end
  def method_missing(name, *args, **kw, &blk)
    if blk
      sub = Rec.new
      blk.call(sub)
      (@subs[name.to_s] ||= []) << { "args" => args, "kw" => kw, "config" => sub.to_h }
      return sub
    end
    if args.empty? && kw.empty? && !name.to_s.end_with?("=")
      return (@subs[name.to_s] ||= [{ "config" => Rec.new }]).last["config"]
    end
    @calls << [name.to_s, args, kw]
    nil
  end
  def respond_to_missing?(*) = true
  def to_h
    subs = @subs.transform_values do |list|
      list.map { |s| s.merge("config" => s["config"].is_a?(Rec) ? s["config"].to_h : s["config"]) }
    end
    { "calls" => @calls, "subs" => subs }
  end
end
module Vagrant
  def self.configure(_version)
    root = Rec.new
    yield root
    $root = root
  end
end
Dir.chdir(ARGV[0]) { load "Vagrantfile" }
puts JSON.generate($root.to_h)
"""


@pytest.fixture(scope="module")
def vagrantfile(tmp_path_factory):
    stub = tmp_path_factory.mktemp("ruby") / "stub.rb"
    stub.write_text(RUBY_STUB)
    res = subprocess.run([tool("ruby"), str(stub), str(VAGRANT)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    root = json.loads(res.stdout)
    boxes = {}
    for define in root["subs"]["vm"][0]["config"]["subs"]["define"]:
        name = define["args"][0]
        vm = define["config"]["subs"]["vm"][0]["config"]
        calls = vm["calls"]
        boxes[name] = {
            "ip": next(c[2]["ip"] for c in calls if c[0] == "network"),
            "provision": next(c for c in calls if c[0] == "provision"),
            "synced": [c[1] for c in calls if c[0] == "synced_folder"],
        }
    return boxes


def test_vagrantfile_defines_the_seed_boxes_plus_the_etl_box(vagrantfile):
    assert list(vagrantfile) == ["zookeeper1", "services1", "broker1", "broker2", "broker3", "etl1"]
    for name, box in vagrantfile.items():
        _, args, kw = box["provision"]
        assert args == ["shell"]
        script = VAGRANT / kw["path"]
        assert script.is_file() and os.access(script, os.X_OK), f"{name}: {script}"
        assert kw["env"]["NODE_IP"] == box["ip"]
    assert ["..", "/srv/pseidon-dagster"] in vagrantfile["etl1"]["synced"]  # etl.sh installs the checkout from there


def test_vagrantfile_addresses_match_the_scripts_and_the_config(vagrantfile):
    from pseidon_dagster.core import config as config_mod

    env = vagrantfile["etl1"]["provision"][2]["env"]
    brokers = [f"{vagrantfile[f'broker{i}']['ip']}:9092" for i in (1, 2, 3)]
    services = vagrantfile["services1"]["ip"]
    assert env["KAFKA_BROKERS"].split(",") == brokers == cluster.VAGRANT["KAFKA_BROKERS"].split(",")
    assert env["SERVICES_IP"] == services
    assert env["CONTROLLER"] == f"{vagrantfile['zookeeper1']['ip']}:9093"
    assert cluster.VAGRANT["REDIS_HOST"] == f"{services}:6379"
    assert cluster.VAGRANT["MYSQL_HOST"] == f"{services}:3306"
    assert cluster.VAGRANT["HIVE_URL"].startswith(f"//{services}:10000/")
    assert env["REDIS_PASSWORD"] == cluster.VAGRANT["REDIS_PASSWORD"]
    assert env["MYSQL_PASSWORD"] == cluster.VAGRANT["MYSQL_PASSWORD"]
    settings = config_mod.load(VAGRANT / "config" / "pseidon.edn")
    assert list(settings.kafka_brokers) == brokers
    assert settings.redis.hosts[0] == (services, 6379) and settings.redis.password == env["REDIS_PASSWORD"]
    url = sa.engine.make_url(settings.etl_db_url)
    assert (url.host, url.port, url.database, url.username, url.password) == (
        services, 3306, cluster.VAGRANT["MYSQL_DB"], cluster.VAGRANT["MYSQL_USER"], env["MYSQL_PASSWORD"])
    # the MySQL user is limited to the boxes' network
    services_sh = (SCRIPTS / "services.sh").read_text()
    assert "'pseidon'@'${NETWORK_PREFIX}.%'" in services_sh
    assert env["NETWORK_PREFIX"] == services.rsplit(".", 1)[0]


def test_the_etl_box_installs_the_production_units():
    etl_sh = (SCRIPTS / "etl.sh").read_text()
    for unit in ("dagster-code-server", "dagster-daemon", "dagster-webserver"):
        assert f'"$SRC"/deploy/systemd/{unit}.service' in etl_sh
        assert (REPO / "deploy" / "systemd" / f"{unit}.service").is_file()
    assert '"$SRC/deploy/workspace.yaml"' in etl_sh


def test_no_private_addresses_in_tests_ci_or_bench():
    for private in (".".join(octets) for octets in (["10", "0", "0", "1"], ["192", "168", "4", "40"],
                                                     ["172", "20", "1", "2"])):  # no literal address in this file
        assert PRIVATE.search(f"host {private}:9092"), private
    # look-alikes the pattern must not take for private addresses (built from parts: never contacted, and no
    # literal non-loopback address in this file)
    for public in ["127.0.0.1"] + [".".join(parts) for parts in (["1", "10", "0", "0"], ["172", "15", "0", "1"],
                                                                  ["v2", "10", "1", "3", "4"],
                                                                  ["3", "192", "168", "0", "1"])]:
        assert not PRIVATE.search(public), public
    offenders = []
    for top in ("tests", ".ci", "bench"):
        for path in (REPO / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    if PRIVATE.search(line):
                        offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


# --- the helper scripts, answering without a server ---------------------------------------------------------------

@pytest.mark.parametrize("script", ["print-kafka-messages.py", "push-kafka-messages.py", "test-kafka.py",
                                    "cluster.py", "create_topic.sh", "create_topic_remote.sh",
                                    "etl2-integration-test.sh", "ci-local.sh"])
def test_help(script):
    res = run([SCRIPTS / script, "--help"], loopback_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


def test_vagrant_defaults_are_refused_on_loopback_only():
    """Without overrides the scripts would talk to the boxes: under PSEIDON_LOOPBACK_ONLY (and CI=true) they exit
    before sending anything."""
    for script, args in [("test-kafka.py", []), ("print-kafka-messages.py", ["t", "1"]),
                         ("push-kafka-messages.py", ["1", "t", "x"]), ("create_topic_remote.sh", ["t"])]:
        res = run([SCRIPTS / script, *args], loopback_env(), timeout=30)
        assert res.returncode != 0 and "refusing to contact" in res.stderr, (script, res.stderr)
    env = loopback_env(CI="true")
    del env["PSEIDON_LOOPBACK_ONLY"]
    res = run([SCRIPTS / "test-kafka.py"], env, timeout=30)
    assert res.returncode != 0 and "refusing to contact" in res.stderr
