"""What the demo and the tests start on loopback -- tansu, Redis, Spark's Hive Thrift Server -- and the demo itself.
Production never imports this package: `core/` holds only what a deployment runs."""
