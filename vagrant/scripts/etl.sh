#!/usr/bin/env bash
# pseidon-dagster from the project checkout (/vagrant), configured for the cluster.
set -euo pipefail
apt-get update -q && apt-get install -y -q python3-venv make gcc python3-dev
cd /vagrant && make install
mkdir -p /opt/pseidon-etl/conf && cp /vagrant/vagrant/config/pseidon.edn /opt/pseidon-etl/conf/pseidon.edn
echo "Run: cd /vagrant && DAGSTER_HOME=/var/lib/dagster .venv/bin/dagster dev -w workspace.yaml -h 0.0.0.0"
