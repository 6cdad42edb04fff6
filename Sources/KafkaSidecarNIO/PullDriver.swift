import KafkaSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Runs the pull consumer instances (``PullConsumer``, one group consumer each) of the REST port,
/// confined to one event loop. It only moves events and actions: every decision (what a fetch
/// gets, when it is answered, what a commit may name, what a rebalance releases, when an idle
/// instance goes) is the engine's, the same engine the simulator runs.
public final class PullDriver: @unchecked Sendable {
    /// One instance: its engine, its group consumer and the calls waiting for an answer.
    /// Confined to the driver's event loop, like the driver itself.
    private final class Running: @unchecked Sendable {
        let engine: PullConsumer
        var consumer: any KafkaGroupConsumer
        /// Bumped when the group consumer is replaced (after an unsubscribe): events of the old one are dropped.
        var generation: UInt64 = 0
        var calls: [UInt64: (call: PullCall, promise: EventLoopPromise<RESTResponse>?)] = [:]
        var releases: [UInt64: @Sendable ([PartitionOffset]) -> Void] = [:]
        var nextCall: UInt64 = 1
        var nextRevocation: UInt64 = 1
        init(engine: PullConsumer, consumer: any KafkaGroupConsumer) {
            self.engine = engine
            self.consumer = consumer
        }
    }

    private let loop: any EventLoop
    private let cluster: any KafkaCluster
    private let registry: PullConsumerRegistry
    private let flavour: APIFlavour
    private let logger: Logger
    private var running: [ObjectIdentifier: Running] = [:]
    private var closing: [EventLoopPromise<Void>] = []
    private let count = NIOLockedValueBox(0)

    public init(cluster: any KafkaCluster, limits: PullConsumerLimits, flavour: APIFlavour, group: any EventLoopGroup, logger: Logger) {
        self.cluster = cluster
        self.flavour = flavour
        self.logger = logger
        loop = group.next()
        registry = PullConsumerRegistry(limits: limits, random: SeededRandom(seed: UInt64.random(in: .min ... .max)))
    }

    private var now: MeshInstant { MeshInstant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds)) }

    /// Instances open or closing (for /metrics).
    public var instances: Int { count.withLockedValue { $0 } }

    /// Answers `request` if it is a consumer path; `nil` otherwise.
    public func handle(_ request: RESTRequest) -> EventLoopFuture<RESTResponse>? {
        let pull = PullRequest(method: request.method.rawValue, path: request.path, query: request.query,
                               accept: request.headers.first(name: "accept"), body: Array(buffer: request.body))
        let decision = PullRoutes.decide(pull, flavour: flavour)
        if case .notPull = decision { return nil }
        let origin = Self.origin(request.headers)
        return loop.flatSubmit { [self] in
            switch decision {
            case .notPull: preconditionFailure("handled above")
            case .refuse(let e): return loop.makeSucceededFuture(Self.response(PullAnswers.refusal(e, flavour)))
            case .create(let group, let name, let settings): return create(group, name, settings, origin: origin)
            case .call(let group, let name, let call): return self.call(group, name, call, accept: pull.accept)
            }
        }
    }

    /// Closes every instance (each commits what auto commit counts and leaves its group).
    public func stop() async {
        let done: EventLoopFuture<Void> = loop.flatSubmit { [self] in
            guard !running.isEmpty else { return loop.makeSucceededVoidFuture() }
            let promise = loop.makePromise(of: Void.self)
            closing.append(promise)
            for r in running.values { deliver(r, .delete, promise: nil) }
            return promise.futureResult
        }
        try? await done.get()
    }

    // MARK: calls

    private func create(_ group: String, _ name: String?, _ settings: PullConsumerSettings, origin: String) -> EventLoopFuture<RESTResponse> {
        let instance: PullConsumer
        switch registry.create(group: group, name: name, settings: settings, now: now) {
        case .failure(let e): return loop.makeSucceededFuture(Self.response(PullAnswers.refusal(e, settings.flavour)))
        case .success(let made): instance = made
        }
        let consumer: any KafkaGroupConsumer
        do {
            consumer = try makeConsumer(instance)
        } catch {
            registry.forget(instance)
            return loop.makeSucceededFuture(Self.response(PullAnswers.refusal(.kafka(error), settings.flavour)))
        }
        let r = Running(engine: instance, consumer: consumer)
        running[ObjectIdentifier(instance)] = r
        count.withLockedValue { $0 = running.count }
        install(r)
        apply(r, .started)
        logger.info("pull consumer \(instance.name) of group \(group) created (\(settings.format.rawValue), \(settings.flavour.rawValue))")
        return loop.makeSucceededFuture(Self.response(PullAnswers.created(group: group, name: instance.name, origin: origin)))
    }

    private func call(_ group: String, _ name: String, _ call: PullCall, accept: String?) -> EventLoopFuture<RESTResponse> {
        guard let instance = registry.instance(group: group, name: name), let r = running[ObjectIdentifier(instance)] else {
            return loop.makeSucceededFuture(Self.response(PullAnswers.refusal(.instanceNotFound, flavour)))
        }
        if case .fetch = call, let problem = PullRoutes.acceptProblem(accept, format: instance.settings.format, flavour: instance.settings.flavour) {
            return loop.makeSucceededFuture(Self.response(PullAnswers.refusal(problem, instance.settings.flavour)))
        }
        let promise = loop.makePromise(of: RESTResponse.self)
        deliver(r, call, promise: promise)
        return promise.futureResult
    }

    private func deliver(_ r: Running, _ call: PullCall, promise: EventLoopPromise<RESTResponse>?) {
        let id = r.nextCall
        r.nextCall += 1
        r.calls[id] = (call, promise)
        apply(r, call.event(call: id, assigned: r.engine.assignedPartitions))
    }

    // MARK: driving

    private func makeConsumer(_ instance: PullConsumer) throws(KafkaError) -> any KafkaGroupConsumer {
        var config = KafkaConsumerConfig(groupId: instance.group)
        config.clientId = "light-mesh-pull-" + instance.name
        config.resetPolicy = instance.settings.resetPolicy
        return try cluster.makeConsumer(config)
    }

    private func install(_ r: Running) {
        let generation = r.generation
        r.consumer.onRevoke { [self] revocation, release in
            loop.execute { [self] in
                guard r.generation == generation else { return release([]) }
                let id = r.nextRevocation
                r.nextRevocation += 1
                r.releases[id] = release
                apply(r, .revoking(id: id, revocation))
            }
        }
    }

    private func apply(_ r: Running, _ event: PullConsumer.Event) {
        loop.assertInEventLoop()
        for action in r.engine.handle(event, now: now) { perform(r, action) }
    }

    private func perform(_ r: Running, _ action: PullConsumer.Action) {
        switch action {
        case .subscribe(let topics):
            do { try r.consumer.subscribe(topics) } catch { logger.warning("pull consumer \(r.engine.name): subscribe \(topics) failed: \(error)") }
        case .assign(let tps):
            do { try r.consumer.assign(tps) } catch { logger.warning("pull consumer \(r.engine.name): assign failed: \(error)") }
        case .unsubscribe:
            // The seam has no unsubscribe: the old group consumer leaves (its revoke step runs), a new one waits.
            let old = r.consumer
            r.generation += 1
            do {
                r.consumer = try makeConsumer(r.engine)
                install(r)
            } catch {
                logger.warning("pull consumer \(r.engine.name): a fresh group consumer failed: \(error)")
            }
            old.close {}
        case .poll(let id, let maxRecords, let after):
            let generation = r.generation
            let poll = { [self] in
                r.consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(100)) { [self] events in
                    loop.execute { [self] in
                        // A poll of a replaced consumer still ends the engine's poll, with nothing in it.
                        apply(r, .polled(id: id, r.generation == generation ? events : []))
                    }
                }
            }
            if after == .zero { poll() } else { loop.scheduleTask(in: .nanoseconds(after.nanoseconds)) { poll() } }
        case .pause(let tps):
            r.consumer.pause(tps)
        case .resume(let tps):
            r.consumer.resume(tps)
        case .seek(let tp, let target):
            do { try r.consumer.seek(tp, to: target) } catch { logger.warning("pull consumer \(r.engine.name): seek \(tp) failed: \(error)") }
        case .commit(let ticket, let offsets):
            r.consumer.commit(offsets) { [self] result in loop.execute { [self] in apply(r, .commitDone(ticket: ticket, result)) } }
        case .fetchCommitted(let ticket, let tps):
            r.consumer.committed(tps) { [self] result in loop.execute { [self] in apply(r, .committedFetched(ticket: ticket, result)) } }
        case .release(let id, let offsets):
            r.releases.removeValue(forKey: id)?(offsets)
        case .answer(let id, let answer):
            guard let (call, promise) = r.calls.removeValue(forKey: id) else { return }
            promise?.succeed(Self.response(PullAnswers.encode(answer, call: call, settings: r.engine.settings, assigned: r.engine.assignedPartitions)))
        case .armTimer(let timer, let delay):
            loop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { [self] in apply(r, .timerFired(timer)) }
        case .close:
            logger.info("pull consumer \(r.engine.name) of group \(r.engine.group) closed")
            r.consumer.close { [self] in
                loop.execute { [self] in
                    registry.forget(r.engine)
                    running[ObjectIdentifier(r.engine)] = nil
                    count.withLockedValue { $0 = running.count }
                    if running.isEmpty {
                        for p in closing { p.succeed(()) }
                        closing = []
                    }
                }
            }
        }
    }

    // MARK: helpers

    static func response(_ a: RESTAnswer) -> RESTResponse {
        RESTResponse(status: a.status, contentType: a.contentType, body: a.body)
    }

    /// The scheme and host the app used, for `base_uri`: `X-Forwarded-Proto`/`X-Forwarded-Host`
    /// when a proxy set them, else `http://` and the `Host` field.
    static func origin(_ headers: HTTPHeaders) -> String {
        let scheme = headers.first(name: "x-forwarded-proto").flatMap { $0 == "https" ? "https" : nil } ?? "http"
        let host = headers.first(name: "x-forwarded-host") ?? headers.first(name: "host") ?? "localhost"
        // Only what can be a host[:port]: a reflected value must not inject into the JSON or the URI.
        let safe = host.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x3A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x2D || b == 0x5B || b == 0x5D
        }
        return scheme + "://" + (safe && !host.isEmpty ? host : "localhost")
    }
}
