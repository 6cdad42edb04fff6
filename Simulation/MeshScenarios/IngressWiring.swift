import HTTPSidecar
import HTTPSidecarEngines
import MeshCore
import MeshSimulator

/// Builds the ingress workload's hosts: the app, the sidecar pod in front of it (its policy: `/admin`
/// and below from 10.0.0.0/8 only, `/limited` and below rate-limited per client address, `/cors`
/// behind a CORS policy allowing one origin, `/secure` and below behind JWT (``SimJWT``; `/secure/admin`
/// needs the `pets:admin` scope), everything else open), and the clients.
enum IngressWiring {
    /// The sidecar's ingress settings in the scenario.
    static func sidecarConfig(_ workload: IngressWorkloadConfig) -> IngressConfig {
        var c = IngressConfig()
        c.upstreamTimeout = workload.upstreamTimeout
        c.headerTimeout = workload.headerTimeout
        c.maxBodyBytes = workload.maxBodyBytes
        c.ipFilter = IPFilter(allow: [CIDR("10.0.0.0/8")!])
        c.routes = [IngressRoute(prefix: "/", middleware: []), IngressRoute(prefix: "/admin", middleware: [.ipFilter]),
                    IngressRoute(prefix: "/limited", middleware: [.rateLimit], rateLimit: IngressSpellings.limit),
                    IngressRoute(prefix: "/cors", middleware: [.cors]), IngressRoute(prefix: "/secure", middleware: [.jwt])]
        c.cors = CORSPolicy(allowedOrigins: [IngressSpellings.goodOrigin])
        return c
    }

    /// The sidecar's live objects: the JWT verifier with the test key (``SimJWT``).
    static func sidecarServices() -> IngressServices { IngressServices(jwt: SimJWT.authenticator()) }

    /// A client host's address: `internal…` groups are inside 10.0.0.0/8, the rest outside it.
    static func address(of name: String) -> String {
        let index = Int(name.split(separator: "-").last ?? "0") ?? 0
        return name.hasPrefix("internal") ? "10.0.0.\(index + 1)" : "192.0.2.\(index + 1)"
    }

    static func addHosts(_ sim: Simulation, _ scenario: Scenario, _ config: IngressWorkloadConfig, stopAt: MeshInstant) {
        let ledger = IngressLedger()
        let faults = sim.faults!
        guard let appGroup = scenario.hosts.first(where: { $0.role == .ingressApp }),
              let sidecarGroup = scenario.hosts.first(where: { $0.role == .ingressSidecar }) else { return }
        let app = sim.addHost(named: "\(appGroup.name)-0") { _ in IngressApp(config: config, ledger: ledger, faults: faults) }.id
        let ingress = sidecarConfig(config), services = sidecarServices()
        let sidecar = sim.addHost(named: "\(sidecarGroup.name)-0") { [unowned sim] _ in
            IngressSidecarPod(ingress: ingress, services: services, app: app, addressOf: { address(of: sim.hosts[$0].name) })
        }.id
        for group in scenario.hosts where group.role == .ingressClient {
            for i in 0..<group.count {
                let name = "\(group.name)-\(i)"
                sim.addHost(named: name) { _ in IngressClient(config: config, ledger: ledger, sidecar: sidecar, address: address(of: name), stopAt: stopAt) }
            }
        }
    }
}
