//! Kafka for doudi: the consumer-group source of the four feeds, the dead-letter and warnings
//! topics, and librdkafka's Kafka-protocol mock broker for development and tests.
