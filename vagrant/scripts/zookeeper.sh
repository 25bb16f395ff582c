#!/usr/bin/env bash
set -euo pipefail
apt-get update -q && apt-get install -y -q zookeeperd
systemctl enable --now zookeeper
