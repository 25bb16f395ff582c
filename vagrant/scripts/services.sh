#!/usr/bin/env bash
# Redis, MariaDB (pseidon_logs) and a HiveServer2 (Spark Thrift Server from pyspark) on services1.
set -euo pipefail
apt-get update -q && apt-get install -y -q redis-server mariadb-server python3-venv openjdk-17-jre-headless
sed -i 's/^bind .*/bind 0.0.0.0/' /etc/redis/redis.conf && systemctl restart redis-server
sed -i 's/^bind-address.*/bind-address = 0.0.0.0/' /etc/mysql/mariadb.conf.d/50-server.cnf && systemctl restart mariadb
mysql -e "CREATE DATABASE IF NOT EXISTS pseidon; CREATE USER IF NOT EXISTS 'pseidon'@'%' IDENTIFIED BY 'pseidon';
          GRANT ALL ON pseidon.* TO 'pseidon'@'%';"
mysql pseidon < /vagrant/vagrant/config/db.sql
