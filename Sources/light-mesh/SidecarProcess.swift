import Dispatch
import Foundation
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import Logging
import MeshConfig
import MeshCore
import NIOConcurrencyHelpers
import NIOPosix
import Prometheus
import SidecarAuth

/// The running HTTP sidecar: its listeners, and, with a configuration file, the reloads (SIGHUP or
/// a change of the file). A reload that fails to parse or build is reported and changes nothing.
final class SidecarProcess: Sendable {
    let group: MultiThreadedEventLoopGroup
    let ingress: IngressServer
    let egress: EgressServer?
    let admin: AdminServer
    private let state: NIOLockedValueBox<(settings: SidecarSettings, jwt: (JWTSettings, JWTAuthenticator)?)>
    private let configFile: String?
    private let reloading = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let logger: Logger

    private init(group: MultiThreadedEventLoopGroup, ingress: IngressServer, egress: EgressServer?, admin: AdminServer,
                 state: NIOLockedValueBox<(settings: SidecarSettings, jwt: (JWTSettings, JWTAuthenticator)?)>, configFile: String?, logger: Logger) {
        self.group = group
        self.ingress = ingress
        self.egress = egress
        self.admin = admin
        self.state = state
        self.configFile = configFile
        self.logger = logger
    }

    /// Starts ingress (and its TLS listener), egress (when services or service_url origins are
    /// configured) and admin; with `configFile`, watches it for reloads.
    static func start(_ settings: SidecarSettings, configFile: String?) async throws -> SidecarProcess {
        var logger = Logger(label: "light-mesh.http-sidecar")
        logger.logLevel = .notice
        // A closed stdout (the log collector went away) must cost log lines, not the process.
        signal(SIGPIPE, SIG_IGN)
        for name in settings.unknownVariables { say("warning: \(name) matches no configuration key (misspelt, or for a key this file does not use); it has no effect") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        let ingressConfig = settings.ingress
        let services = try await settings.ingressServices(group: group)
        let jwt = settings.jwt.flatMap { s in services.jwt.map { (s, $0) } }
        let registry = PrometheusCollectorRegistry()
        let metrics = SidecarMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let ingress = try IngressServer(config: ingressConfig, services: services, group: group, logger: logger, metrics: metrics)
        let bound = try await ingress.start()
        if let plain = ingress.plainAddress {
            say("ingress on \(plain)\(ingress.tlsAddress.map { " and TLS on \($0)" } ?? ""), app at \(ingressConfig.app)")
            if ingressConfig.tls?.clientCAFile != nil {
                say("warning: ingress.tls.client_ca is set but the plain listener on \(plain) accepts clients without a certificate; "
                    + "set ingress.tls.required: true to serve TLS only")
            }
        } else {
            say("ingress on \(bound) (TLS only), app at \(ingressConfig.app)")
        }
        var egress: EgressServer?
        if !settings.egress.services.isEmpty || !settings.egress.serviceURLAllowList.isEmpty {
            let server = try EgressServer(config: settings.egress, group: group, logger: logger, metrics: metrics)
            let at = try await server.start()
            say("egress on \(at) for \(settings.egress.services.map(\.name).joined(separator: ", "))")
            egress = server
        }
        let state = NIOLockedValueBox((settings: settings, jwt: jwt))
        let admin = AdminServer(listen: settings.adminListen, group: group, sources: AdminServer.Sources(
            registry: registry, configJSON: { state.withLockedValue { $0.settings.effectiveJSON() } }, egress: egress,
            appHealth: settings.appHealthPath.map { (settings.ingress.app, $0) }))
        let adminAt = try await admin.start()
        say("admin on \(adminAt)")
        let process = SidecarProcess(group: group, ingress: ingress, egress: egress, admin: admin, state: state, configFile: configFile, logger: logger)
        if configFile != nil { process.watchForReloads() }
        return process
    }

    static func say(_ line: String) {
        FileHandle.standardError.write(Data("light-mesh http-sidecar: \(line)\n".utf8))
    }

    /// SIGHUP, or a change of the file's contents (checked every second), reloads.
    private func watchForReloads() {
        guard let configFile else { return }
        let changes = AsyncStream<Void> { continuation in
            signal(SIGHUP, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            source.setEventHandler { continuation.yield() }
            source.resume()
            let handle = SignalSourceHandle(source: source)
            // The configuration file and the JWKS file it names (a key removed there must stop
            // verifying without a restart).
            let state = self.state
            let watched: @Sendable () -> [Data?] = {
                let jwks = state.withLockedValue { $0.settings.jwt?.jwksFile }
                return [configFile, jwks].map { $0.flatMap { try? Data(contentsOf: URL(fileURLWithPath: $0)) } }
            }
            let poller = Task {
                var last = watched()
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    let now = watched()
                    if now != last, now[0] != nil {
                        last = now
                        continuation.yield()
                    }
                }
            }
            continuation.onTermination = { _ in
                handle.source.cancel()
                poller.cancel()
            }
        }
        reloading.withLockedValue {
            $0 = Task { [self] in
                for await _ in changes { await reload() }
            }
        }
    }

    /// Reads the file again and applies it; on any error keeps everything as it was.
    func reload() async {
        guard let configFile else { return }
        do {
            let next = try SidecarConfigFile.load(configFile)
            for name in next.unknownVariables { Self.say("reload: warning: \(name) matches no configuration key (misspelt?)") }
            let previous = state.withLockedValue { $0 }
            if egress == nil && (!next.egress.services.isEmpty || !next.egress.serviceURLAllowList.isEmpty) {
                Self.say("reload: egress services added; starting the egress listener needs a restart")
            }
            try SidecarConfigFile.refuseSilentWeakening(from: previous.settings, to: next)
            let services = try await next.ingressServices(group: group, reuse: previous.jwt)
            // The same JWT settings keep their authenticator; its keys are read again (revocation).
            if let reused = previous.jwt, services.jwt === reused.1 {
                do { try await reused.1.reloadKeys() } catch { throw ConfigError(key: "ingress.jwt", "the JWKS could not be read again: \(error)") }
            }
            // Build both before applying either, so a failure leaves both as they were.
            let ingressNext = try ingress.prepareReload(next.ingress, services: services)
            let egressNext = try egress?.prepareReload(next.egress)
            ingressNext.commit()
            egressNext?.commit()
            let warnings = ingressNext.warnings + (egressNext?.warnings ?? [])
            for w in warnings { Self.say("reload: \(w)") }
            if next.threads != previous.settings.threads { Self.say("reload: threads changed: takes effect after a restart") }
            let jwt = next.jwt.flatMap { s in services.jwt.map { (s, $0) } }
            state.withLockedValue { $0 = (next, jwt) }
            Self.say("reloaded \(configFile)")
        } catch {
            Self.say("reload of \(configFile) refused, keeping the running configuration: \(error)")
        }
    }

    /// Stops admin and egress, drains the ingress, shuts the event loops down.
    func stop() async throws {
        reloading.withLockedValue { $0?.cancel() }
        try await admin.stop()
        try await egress?.stop()
        let drainTimeout = state.withLockedValue { $0.settings.drainTimeout }
        let left = try await ingress.drain(deadline: drainTimeout)
        Self.say("drained (\(left) request(s) cut off)")
        try await group.shutdownGracefully()
    }
}
