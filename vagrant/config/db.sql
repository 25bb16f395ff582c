-- The pseidon_logs table, exactly the seed's DDL (pseidon-etl README "Configuration dbs"), and a sample row.
-- services.sh loads this into the database `pseidon` on services1, vagrant/scripts/ci-local.sh into a throw-away
-- database on the local MariaDB. (pseidon-dagster also reads the optional `date_format` column when present.)
CREATE TABLE IF NOT EXISTS `pseidon_logs` (
  `log` varchar(100) NOT NULL,
  `format` varchar(200) DEFAULT NULL,
  `output_format` varchar(200) DEFAULT NULL,
  `base_partition` varchar(200) DEFAULT NULL,
  `log_partition` varchar(200) DEFAULT NULL,
  `hive_table_name` varchar(200) DEFAULT NULL,
  `hive_url` varchar(255),
  `hive_user` varchar(200) DEFAULT NULL,
  `hive_password` varchar(200) DEFAULT NULL,
  `quarantine` varchar(200) DEFAULT "/tmp/pseidon-quarantine",
  `log_group` varchar(100) DEFAULT 'default',
  `enabled`  tinyint(1) DEFAULT '1',
  PRIMARY KEY (`log`)
) ENGINE=MyISAM DEFAULT CHARSET=latin1;

-- A sample log, disabled: enable it once its topic exists (create_topic_remote.sh test1), e.g.
--   UPDATE pseidon_logs SET enabled = 1 WHERE log = 'test1';
-- hive_url is relative to the ETL box: its Hive table is created with `pseidon-dagster hive create-table test1`.
INSERT IGNORE INTO pseidon_logs (log, format, output_format, base_partition, log_partition, hive_table_name,
  hive_url, quarantine, log_group, enabled) VALUES
  ('test1', 'txt:sep=comma;ts=0', 'gzip', '/var/lib/pseidon/lake', 'raw/test1', 'test1',
   '//192.168.4.10:10000/default', '/var/lib/pseidon/quarantine', 'etl', 0);
