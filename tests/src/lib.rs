//! The test bed: starts real brokers (Apache Kafka, tansu) and real peer clients for the
//! integration tests in `tests/tests/`.
