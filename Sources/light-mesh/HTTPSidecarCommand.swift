import ArgumentParser
import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import Logging
import MeshCore
import NIOPosix

struct HTTPSidecarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-sidecar",
        abstract: "Run the HTTP sidecar's ingress: a reverse proxy in front of the app with the middleware chain.",
        discussion: """
            Today: ingress proxying with keep-alive to the app, hop-by-hop header removal, X-Forwarded-*,
            X-Correlation-Id, W3C traceparent (new span per hop), IP allow/deny, CORS, rate limiting
            (GCRA, RateLimit-* and Retry-After), body-size limit, header timeout, smuggling defence.
            SIGTERM or SIGINT stops accepting and drains in-flight requests up to --drain-timeout.
            Egress routing, JWT, metrics, TLS and YAML configuration are not in this build yet.
            """
    )

    @Option(help: "Listen address, HOST:PORT.") var listen = "0.0.0.0:9080"
    @Option(help: "The app, HOST:PORT.") var app = "127.0.0.1:8080"
    @Option(help: "Largest request body in bytes (larger: 413).") var maxBodyBytes = 10 * 1024 * 1024
    @Option(help: "Seconds a client may take to send a request head.") var headerTimeout = 10.0
    @Option(help: "Seconds the app may take to answer (then 504).") var upstreamTimeout = 30.0
    @Option(help: "Requests per second per client address (off when absent).") var rateLimit: Double?
    @Option(help: "Burst allowed above the rate.") var burst = 20
    @Option(name: .customLong("cors-origin"), help: "Allowed CORS origin (repeatable; * for any).") var corsOrigins: [String] = []
    @Option(name: .customLong("allow"), help: "Allowed client CIDR (repeatable; when given, only these pass).") var allow: [String] = []
    @Option(name: .customLong("deny"), help: "Denied client CIDR (repeatable; deny wins).") var deny: [String] = []
    @Option(help: "Event-loop threads.") var threads = 1
    @Option(help: "Seconds to wait for in-flight requests on SIGTERM.") var drainTimeout = 10.0

    func validate() throws {
        _ = try address(listen, "--listen")
        _ = try address(app, "--app")
        guard maxBodyBytes >= 0 else { throw ValidationError("--max-body-bytes must not be negative") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if let r = rateLimit, r <= 0 { throw ValidationError("--rate-limit must be positive") }
        guard burst >= 1 else { throw ValidationError("--burst must be at least 1") }
        for c in allow + deny where CIDR(c) == nil { throw ValidationError("'\(c)' is not a CIDR such as 10.0.0.0/8") }
    }

    func address(_ text: String, _ option: String) throws -> MeshAddress {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option) expects HOST:PORT, got '\(text)'")
        }
        return MeshAddress(host: String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
    }

    func run() async throws {
        var config = IngressConfig()
        config.listen = try address(listen, "--listen")
        config.app = try address(app, "--app")
        config.maxBodyBytes = maxBodyBytes
        config.headerTimeout = .milliseconds(Int64(headerTimeout * 1000))
        config.upstreamTimeout = .milliseconds(Int64(upstreamTimeout * 1000))
        config.rateLimit = rateLimit.map { RateLimiter.Config(rate: $0, burst: burst) }
        config.cors = corsOrigins.isEmpty ? nil : CORSPolicy(allowedOrigins: corsOrigins)
        config.ipFilter = IPFilter(allow: allow.compactMap(CIDR.init), deny: deny.compactMap(CIDR.init))
        var logger = Logger(label: "light-mesh.ingress")
        logger.logLevel = .warning
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let ingress = IngressServer(config: config, group: group, logger: logger)
        let bound = try await ingress.start()
        FileHandle.standardError.write(Data("light-mesh http-sidecar: ingress on \(bound), app at \(config.app)\n".utf8))
        await waitForSignal()
        let left = try await ingress.drain(deadline: .milliseconds(Int64(drainTimeout * 1000)))
        FileHandle.standardError.write(Data("light-mesh http-sidecar: drained (\(left) request(s) cut off)\n".utf8))
        try await group.shutdownGracefully()
    }
}

/// Suspends until SIGINT or SIGTERM.
func waitForSignal() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let once = SignalOnce(continuation)
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { once.fire() }
            source.resume()
            once.keep(source)
        }
    }
}

final class SignalOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var sources: [any DispatchSourceSignal] = []
    init(_ c: CheckedContinuation<Void, Never>) { continuation = c }
    func keep(_ s: any DispatchSourceSignal) { lock.lock(); sources.append(s); lock.unlock() }
    func fire() {
        lock.lock()
        let c = continuation
        continuation = nil
        lock.unlock()
        c?.resume()
    }
}
