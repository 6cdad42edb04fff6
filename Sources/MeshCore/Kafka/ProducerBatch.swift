import Synchronization

extension KafkaProducer {
    /// One `send` per record; the results are gathered and handed over once, in order.
    public func sendBatch(_ records: [ProducerRecord], _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void) {
        guard !records.isEmpty else { return completion([]) }
        let gather = BatchResults(count: records.count, completion)
        for (i, record) in records.enumerated() {
            send(record) { gather.set(i, $0) }
        }
    }
}

/// The results of a batch of sends, filled from any thread; the last one in calls the completion,
/// once, with all of them in order. A result given twice for one index is ignored.
public final class BatchResults: Sendable {
    private let state: Mutex<(results: [Result<RecordMetadata, KafkaError>?], left: Int)>
    private let completion: @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void

    public init(count: Int, _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void) {
        state = Mutex((Array(repeating: nil, count: count), count))
        self.completion = completion
    }

    public func set(_ i: Int, _ result: Result<RecordMetadata, KafkaError>) {
        let finished = state.withLock { s -> [Result<RecordMetadata, KafkaError>]? in
            guard s.results[i] == nil else { return nil }
            s.results[i] = result
            s.left -= 1
            return s.left == 0 ? s.results.map { $0! } : nil
        }
        if let finished { completion(finished) }
    }
}
