import Testing

/// The Kafka suites that run against the embedded broker, one test at a time across all of them.
///
/// Their test bodies are synchronous and wait in real time (join rounds, flushes), so each one holds
/// a thread of Swift's cooperative pool while it runs; run side by side on a two-core machine they
/// held the whole pool and starved the asynchronous HTTP live tests into timeouts. Nested under one
/// serialized suite, at most one of them holds a thread at a time.
@Suite(.serialized) enum KafkaLiveSuites {}
