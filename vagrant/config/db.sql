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
  `date_format` varchar(100) DEFAULT 'datehour',
  PRIMARY KEY (`log`)
) ENGINE=MyISAM DEFAULT CHARSET=latin1;
INSERT IGNORE INTO pseidon_logs (log, format, output_format, base_partition, log_partition, hive_table_name,
  hive_url, log_group) VALUES
  ('test1', 'txt:sep=comma;ts=0', 'gzip', '/var/lib/pseidon/lake', 'raw/test1', 'test1', '//192.168.4.10:10000/default', 'etl');
