import Logging
import MeshCore
import NIOCore
import StreamQuery

/// Runs one persistent query in production: the ``QueryRunner``'s actions carried out on a Kafka
/// group consumer (the query's input partitions, assigned, never subscribed), an idempotent
/// producer to the sink, and the subscription store. Confined to one event loop; every answer hops
/// back to it. It only moves events and actions: every decision is the runner's, the same runner
/// the simulator runs.
///
/// The consumer's group (`lightmesh-query-<id>`) only names the client: offsets live in the store.
public final class QueryDriver: @unchecked Sendable {
    private let loop: any EventLoop
    private var runner: QueryRunner
    private let consumer: any KafkaGroupConsumer
    private let producer: any KafkaProducer
    private let store: any SubscriptionStore
    private let logger: Logger
    private var assigned = false
    private var stopped = false

    public var queryId: String { runner.query.id }

    public init(query: PersistentQuery, partitions: [TopicPartition], settings: QueryRunner.Settings = QueryRunner.Settings(),
                cluster: any KafkaCluster, store: any SubscriptionStore, loop: any EventLoop, logger: Logger) throws(KafkaError) {
        runner = QueryRunner(query, partitions: partitions, settings: settings)
        var cc = KafkaConsumerConfig(groupId: "lightmesh-query-" + query.id)
        cc.clientId = "light-mesh-" + query.id
        consumer = try cluster.makeConsumer(cc)
        var pc = KafkaProducerConfig()
        pc.clientId = "light-mesh-" + query.id
        pc.idempotent = true
        pc.acks = .all
        producer = try cluster.makeProducer(pc)
        self.store = store
        self.loop = loop
        var logger = logger
        logger[metadataKey: "query"] = "\(query.id)"
        self.logger = logger
    }

    /// Starts the query: its state is loaded, and it runs until ``stop()``.
    public func start() {
        loop.execute { self.apply(.started) }
    }

    /// Stops polling; outputs already handed to the producer are flushed (up to 10 s), then the
    /// consumer closes. What was committed stays; the rest comes again at the next start.
    public func stop() async {
        try? await loop.submit { self.stopped = true }.get()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            producer.flush(timeout: .seconds(10)) { _ in done.resume() }
        }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            consumer.close { done.resume() }
        }
    }

    private func apply(_ event: QueryRunner.Event) {
        loop.preconditionInEventLoop()
        guard !stopped else { return }
        let before = runner.rebuilds
        for action in runner.handle(event) { perform(action) }
        if runner.rebuilds > before { logger.warning("rebuilding from the store", metadata: ["rebuilds": "\(runner.rebuilds)"]) }
    }

    /// Delivers `event` on the driver's loop.
    private func deliver(_ event: QueryRunner.Event) {
        loop.execute { self.apply(event) }
    }

    private func perform(_ action: QueryRunner.Action) {
        switch action {
        case .loadState(let ticket, let namespace):
            store.rows(namespace: namespace) { [self] rows in
                store.offsets(consumer: namespace) { [self] offsets in
                    let result: Result<(rows: [StateRow], offsets: [PartitionOffset]), MeshError>
                    switch (rows, offsets) {
                    case (.success(let r), .success(let o)): result = .success((r, o))
                    case (.failure(let e), _), (_, .failure(let e)):
                        logger.warning("the store did not answer a load", metadata: ["error": "\(e)"])
                        result = .failure(e)
                    }
                    deliver(.stateLoaded(ticket: ticket, result))
                }
            }
        case .seek(let targets):
            do {
                if !assigned {
                    try consumer.assign(runner.partitions)
                    assigned = true
                }
                for (tp, target) in targets.sorted(by: { $0.key < $1.key }) { try consumer.seek(tp, to: target) }
            } catch {
                logger.error("the consumer did not take its positions", metadata: ["error": "\(error)"])
            }
        case .poll(let ticket, let maxRecords, let timeout):
            consumer.poll(maxRecords: maxRecords, timeout: timeout) { [self] events in
                var records: [ConsumerRecord] = []
                for event in events {
                    switch event {
                    case .records(let batch): records += batch
                    case .error(let e): logger.warning("the consumer reported an error", metadata: ["error": "\(e)"])
                    default: break
                    }
                }
                deliver(.polled(ticket: ticket, records))
            }
        case .commit(let ticket, let batch):
            store.commit(batch) { [self] result in
                if case .failure(let e) = result { logger.warning("the store refused a commit", metadata: ["error": "\(e)"]) }
                deliver(.committed(ticket: ticket, result))
            }
        case .send(let entries):
            producer.sendBatch(entries.map(\.record)) { [self] results in
                let answers = zip(entries, results).map { entry, result -> QueryRunner.Event in
                    if case .failure(let e) = result {
                        logger.warning("the sink refused an output", metadata: ["sequence": "\(entry.sequence)", "error": "\(e)"])
                    }
                    return .sent(sequence: entry.sequence, result.map { _ in () })
                }
                loop.execute { for answer in answers { self.apply(answer) } }
            }
        case .armTimer(let timer, let delay):
            loop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { self.apply(.timerFired(timer)) }
        case .halt(let why):
            logger.error("the query stopped", metadata: ["reason": "\(why)"])
            stopped = true
        }
    }
}
