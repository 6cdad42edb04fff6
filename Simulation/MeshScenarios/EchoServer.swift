import MeshCore
import MeshSimulator

/// Configuration of an echo server host.
public struct EchoServerConfig: Hashable, Sendable {
    /// Minimum service time of one request.
    public var serviceMin: Duration = .microseconds(200)
    /// Mean of the exponential tail added to `serviceMin`.
    public var serviceTailMean: Duration = .milliseconds(1)
    public init() {}
}

/// A request/response service: echoes each request's key back, after a random service time.
/// Listens for datagrams and stream connections on ``EchoMessage/port``.
final class EchoServer: SimProcess {
    static let stall = FaultSite("echo.server.stall")
    static let drop = FaultSite("echo.server.drop")

    private let config: EchoServerConfig
    private let faults: any FaultInjector
    private enum ReplyPath { case datagram(HostID), stream(StreamID) }
    private var pending: [UInt64: (path: ReplyPath, message: EchoMessage)] = [:]
    private var openStreams: Set<StreamID> = []

    init(config: EchoServerConfig, faults: any FaultInjector) {
        self.config = config
        self.faults = faults
    }

    func start(on host: SimHost) {
        host.listen(port: EchoMessage.port)
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .datagram(let from, _, let payload):
            handle(payload, .datagram(from), host)
        case .accepted(let stream, _, _):
            openStreams.insert(stream)
        case .data(let stream, let payload):
            handle(payload, .stream(stream), host)
        case .closed(let stream), .reset(let stream):
            openStreams.remove(stream)
            host.close(stream)
        case .connected, .connectFailed:
            break
        }
    }

    private func handle(_ payload: [UInt8], _ path: ReplyPath, _ host: SimHost) {
        guard case .request(let wire, let key)? = EchoMessage.decode(payload) else { return }
        if faults.fires(Self.drop) { return }
        var service = Double(config.serviceMin.nanoseconds)
        service += host.random.nextExponential(mean: Double(config.serviceTailMean.nanoseconds))
        if faults.fires(Self.stall) { service *= 50 }
        let token = host.setTimer(after: .nanoseconds(Int64(service)))
        pending[token.rawValue] = (path, .response(wire: wire, body: key))
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let reply = pending.removeValue(forKey: token.rawValue) else { return }
        switch reply.path {
        case .datagram(let to):
            host.send(to: to, port: EchoMessage.port, reply.message.encode())
        case .stream(let stream):
            if openStreams.contains(stream) { host.write(stream, reply.message.encode()) }
        }
    }
}

