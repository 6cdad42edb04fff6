import HTTPClientNIO
import HTTPSidecarEngines
import CoreMetrics
import HTTPSidecar
import NIOConcurrencyHelpers

/// The sidecar's instruments, made once from the factory it was given (no global metrics system).
public final class SidecarMetrics: Sendable {
    private let factory: any MetricsFactory
    private let requests: [String: [Counter]]       // listener → by status class 1...5
    private let durations: [String: Timer]
    private let inFlight: [String: Gauge]
    private let perService = NIOLockedValueBox<[String: ServiceInstruments]>([:])
    private let perRoute = NIOLockedValueBox<[String: [Counter]]>([:])

    struct ServiceInstruments: Sendable {
        /// Answers by status class 1xx...5xx.
        let requests: [Counter]
        let retries: Counter
        let ejections: Counter
        let breakerOpened: Counter
        let breakerClosed: Counter
        let noEndpoint: Counter
    }

    public init(factory: any MetricsFactory) {
        self.factory = factory
        var requests: [String: [Counter]] = [:], durations: [String: Timer] = [:], inFlight: [String: Gauge] = [:]
        for listener in ["ingress", "egress"] {
            requests[listener] = (1...5).map { Counter(label: "lightmesh_requests_total", dimensions: [("listener", listener), ("status_class", "\($0)xx")], factory: factory) }
            durations[listener] = Timer(label: "lightmesh_request_duration_seconds", dimensions: [("listener", listener)], preferredDisplayUnit: .seconds, factory: factory)
            inFlight[listener] = Gauge(label: "lightmesh_requests_in_flight", dimensions: [("listener", listener)], factory: factory)
        }
        self.requests = requests
        self.durations = durations
        self.inFlight = inFlight
    }

    /// Metrics that go nowhere, for tests and embedding.
    public static let none = SidecarMetrics(factory: NOOPMetricsHandler.instance)

    /// One answered request; egress answers also count under their service (the upstream).
    func finished(_ listener: String, status: Int, seconds: Double, service: String? = nil) {
        let cls = min(5, max(1, status / 100))
        requests[listener]?[cls - 1].increment()
        durations[listener]?.recordNanoseconds(Int64(seconds * 1e9))
        if let service { self.service(service).requests[cls - 1].increment() }
    }

    func inFlight(_ listener: String, _ value: Int) { inFlight[listener]?.record(value) }

    /// One answered ingress request that matched a configured route (its path prefix).
    func routeFinished(_ prefix: String, status: Int) {
        let cls = min(5, max(1, status / 100))
        let counters = perRoute.withLockedValue { map in
            if let c = map[prefix] { return c }
            let c = (1...5).map { Counter(label: "lightmesh_ingress_route_requests_total", dimensions: [("route", prefix), ("status_class", "\($0)xx")], factory: factory) }
            map[prefix] = c
            return c
        }
        counters[cls - 1].increment()
    }

    func service(_ name: String) -> ServiceInstruments {
        perService.withLockedValue { map in
            if let s = map[name] { return s }
            let d = [("service", name)]
            let s = ServiceInstruments(
                requests: (1...5).map { Counter(label: "lightmesh_egress_requests_total", dimensions: d + [("status_class", "\($0)xx")], factory: factory) },
                retries: Counter(label: "lightmesh_egress_retries_total", dimensions: d, factory: factory),
                ejections: Counter(label: "lightmesh_egress_ejections_total", dimensions: d, factory: factory),
                breakerOpened: Counter(label: "lightmesh_egress_circuit_opened_total", dimensions: d, factory: factory),
                breakerClosed: Counter(label: "lightmesh_egress_circuit_closed_total", dimensions: d, factory: factory),
                noEndpoint: Counter(label: "lightmesh_egress_no_endpoint_total", dimensions: d, factory: factory))
            map[name] = s
            return s
        }
    }

    func record(_ service: String, _ event: UpstreamPool.Event) {
        let s = self.service(service)
        switch event {
        case .ejected: s.ejections.increment()
        case .breakerOpened: s.breakerOpened.increment()
        case .breakerClosed: s.breakerClosed.increment()
        case .ejectionSkipped: break
        }
    }
}
