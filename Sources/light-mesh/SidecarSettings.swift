import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import SidecarAuth

/// Everything the HTTP sidecar runs with, from the command line or from a configuration file (and
/// its environment overrides). A reload builds a new one and hands the changes to the listeners.
struct SidecarSettings: Sendable {
    var ingress = IngressConfig()
    var egress = EgressConfig()
    /// `egress.lb_policy`: the services' policy unless one sets its own.
    var egressPolicy = LoadBalancingPolicy.peakEWMA
    var jwt: JWTSettings?
    var accessLog = false
    var adminListen = MeshAddress(host: "127.0.0.1", port: 9901)
    var appHealthPath: String?
    var threads = 1
    var drainTimeout: Duration = .seconds(10)
    /// Security sections the configuration file turns off on purpose (`ingress.disabled`).
    var disabledOnPurpose: Set<String> = []
    /// `LIGHT_MESH_*` variables the file reader never looked up, so they have no effect (reported at start and reload).
    var unknownVariables: [String] = []

    /// The ingress's live objects built from these settings: the JWT authenticator (`reuse`'s when
    /// the JWT settings did not change) and the access log.
    func ingressServices(group: any EventLoopGroup, reuse: (JWTSettings, JWTAuthenticator)? = nil) async throws -> IngressServices {
        var services = IngressServices()
        if let jwt {
            if let reuse, reuse.0 == jwt { services.jwt = reuse.1 } else { services.jwt = try await jwt.makeAuthenticator(group: group) }
        }
        if accessLog { services.accessLog = AccessLog() }
        return services
    }

    /// A URL with any `user:password@` and query values redacted (`https://u:p@h/x?k=v` →
    /// `https://<redacted>@h/x?k=*`).
    static func redactedURL(_ text: String) -> String {
        var out = text
        if let scheme = out.range(of: "://") {
            let rest = out[scheme.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@") {
                out.replaceSubrange(scheme.upperBound..<at, with: "<redacted>")
            }
        }
        if let q = out.firstIndex(of: "?") {
            let query = out[out.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).map { pair in
                pair.firstIndex(of: "=").map { String(pair[..<$0]) + "=*" } ?? String(pair)
            }
            out = String(out[...q]) + query.joined(separator: "&")
        }
        return out
    }
}
