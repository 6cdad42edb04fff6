import HTTPSidecar
import MeshCore
import MeshSimulator

/// The ingress workload: clients send requests, many of them hostile (paths spelled to dodge policy,
/// smuggling-shaped framing), through a simulated sidecar pod running the production
/// ``IngressAdmission`` to an app. Policy: `/admin` and below only from internal clients (10.0.0.0/8).
public struct IngressWorkloadConfig: Hashable, Sendable {
    /// Connections per client, each with one request (or a pipelined pair) at a time.
    public var concurrency = 2
    public var thinkTime: Duration = .milliseconds(5)
    /// A client gives up on an answer after this long.
    public var deadline: Duration = .milliseconds(400)
    /// The sidecar answers 504 when the app has not answered within this long.
    public var upstreamTimeout: Duration = .milliseconds(100)
    /// Share of requests sent right behind the previous one on the same connection.
    public var pipelineShare = 0.2
    /// Share of requests that are smuggling attempts.
    public var smugglingShare = 0.1
    /// Share of requests that are CORS preflights or cross-origin requests to `/cors`.
    public var corsShare = 0.1
    /// Share of requests to `/secure` (JWT), with a good, under-scoped, expired, missing or non-bearer token.
    public var jwtShare = 0.1
    /// The sidecar's header timeout: a head, and then each part of a body, must come within it.
    public var headerTimeout: Duration = .milliseconds(50)
    /// The sidecar's body limit.
    public var maxBodyBytes = 256
    /// Share of POST bodies over the body limit, and of POSTs whose body stops halfway for good.
    public var oversizeShare = 0.03
    public var stallShare = 0.03
    public var serviceMin: Duration = .microseconds(300)
    public var serviceTailMean: Duration = .milliseconds(2)
    public init() {}
}

/// What a request should come to, by an independent model of the policy (a table written by hand,
/// not the product's normalizer): the app gets `target`, or the sidecar refuses it.
enum IngressExpectation: Hashable {
    /// Reaches the app as exactly this origin-form target.
    case app(target: String)
    /// Reaches the app as this target, or is refused 429 by the route's rate limit.
    case limited(target: String)
    /// Refused at the head with this status, nothing reaching the app.
    case refused(status: Int)
    /// Refused by the framing scanner (400 and close); nothing of it reaches the app.
    case malformed
    /// A CORS preflight, answered by the sidecar: 204 allowing this origin, or 403 when nil.
    case preflight(allowOrigin: String?)
    /// A body over the limit: 413 and nothing of it reaching the app as a request. Declared by its
    /// length it is refused at the head; a chunked one may be admitted first and the app fail
    /// before the body crosses the limit (502/503).
    case tooLarge(declared: Bool)
    /// A body that stops halfway for good: 408 once the header timeout passes since its last part
    /// (shorter than the app's timeout, so never 504), or 502/503 when the app failed first.
    case stalled
}

/// The request spellings the clients choose from, each with the one target it means (nil: the
/// sidecar must refuse it as a bad path).
enum IngressSpellings {
    static let table: [(target: String, means: String?)] = [
        ("/public/a", "/public/a"),
        ("/admin/a", "/admin/a"),
        ("/public/../admin/a", "/admin/a"),
        ("/./admin/a", "/admin/a"),
        ("//admin//a", "/admin/a"),
        ("/%61dmin/a", "/admin/a"),
        ("/admin/a?x=%2F", "/admin/a?x=%2F"),
        ("/ADMIN/a", "/ADMIN/a"),
        ("/%41DMIN/a", "/ADMIN/a"),
        ("/admin;x/a", "/admin/a"),
        ("/admin;jsessionid=1", "/admin"),
        ("/public;v=2/a", "/public/a"),
        ("/a%00b", nil),
        ("/LIMITED/x", "/LIMITED/x"),
        ("/adminx", "/adminx"),
        ("/admin", "/admin"),
        ("/public/a/..", "/public/"),
        ("/../../admin/a", "/admin/a"),
        ("http://sidecar/admin/a", "/admin/a"),
        ("/public/%2e%2e/admin/a", nil),
        ("/admin%2Fa", nil),
        ("/public/..;x/admin", nil),
        ("/public/a#frag", nil),
        ("/public/a\\..\\..\\admin", nil),
        ("/limited/x", "/limited/x"),
        ("/public/../limited/x", "/limited/x"),
        ("/limited/./x?y=1", "/limited/x?y=1"),
    ]

    /// The rate limit of `/limited` and below, per client address.
    static let limit = RateLimiter.Config(rate: 20, burst: 3)

    /// The origin `/cors` allows, and one it does not.
    static let goodOrigin = "https://app.example", evilOrigin = "https://evil.example"

    /// A CORS request to `/cors`: a preflight (OPTIONS asking for a method) or an actual GET, from
    /// the allowed origin or another; its bytes, method, and what it should come to.
    static func cors(_ id: String, pick: UInt64) -> (bytes: [UInt8], method: String, expected: IngressExpectation, allowOrigin: String??) {
        let good = pick & 1 == 0
        let origin = good ? goodOrigin : evilOrigin
        let target = pick & 4 == 0 ? "/cors/x" : "/public/../cors/x"
        if pick & 2 == 0 {
            let asked = pick & 8 == 0 ? "PUT" : "TRACE"
            let text = "OPTIONS \(target) HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\norigin: \(origin)\r\naccess-control-request-method: \(asked)\r\n\r\n"
            return (Array(text.utf8), "OPTIONS", .preflight(allowOrigin: good && asked == "PUT" ? origin : nil), nil)
        }
        let text = "GET \(target) HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\norigin: \(origin)\r\n\r\n"
        return (Array(text.utf8), "GET", .app(target: "/cors/x"), .some(good ? origin : nil))
    }

    /// A request to `/secure` (JWT required; `/secure/admin` needs `pets:admin`) with one of five
    /// credentials; its bytes, method, body, and what it should come to.
    static func secure(_ id: String, pick: UInt64) -> (bytes: [UInt8], method: String, body: String, expected: IngressExpectation) {
        let spellings = [("/secure/x", "/secure/x"), ("/secure/admin/x", "/secure/admin/x"), ("/public/../secure/admin/x", "/secure/admin/x")]
        let (target, means) = spellings[Int(pick % 3)]
        let credentials: [(field: String?, scopes: Set<String>?)] = [
            ("Bearer " + SimJWT.reader, ["pets:read"]), ("Bearer " + SimJWT.admin, ["pets:read", "pets:admin"]),
            ("Bearer " + SimJWT.expired, nil), (nil, nil), ("Basic c2ltOnNpbQ==", nil),
        ]
        let (field, scopes) = credentials[Int(pick / 3 % 5)]
        let expected: IngressExpectation
        if let scopes {
            expected = means.hasPrefix("/secure/admin") && !scopes.contains("pets:admin") ? .refused(status: 403) : .app(target: means)
        } else {
            expected = .refused(status: 401)
        }
        let post = pick / 15 % 3 == 0
        let body = post ? "body of \(id)" : ""
        var text = "\(post ? "POST" : "GET") \(target) HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\n"
        if let field { text += "authorization: \(field)\r\n" }
        if post { text += "content-length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        return (Array(text.utf8), post ? "POST" : "GET", body, expected)
    }

    /// Whether `target` is under `/limited` (route prefixes match without case).
    static func isLimited(_ target: String) -> Bool {
        let path = (target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target).lowercased()
        return path == "/limited" || path.hasPrefix("/limited/")
    }

    /// Whether the independent model's policy admits `target` (origin form) from `client`: `/admin`
    /// in any case is for 10.0.0.0/8 only (apps may route without case).
    static func admits(_ target: String, client: String) -> Bool {
        let path = (target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target).lowercased()
        let underAdmin = path == "/admin" || path.hasPrefix("/admin/")
        return !underAdmin || client.hasPrefix("10.")
    }

    static func expectation(_ means: String?, client: String) -> IngressExpectation {
        guard let means else { return .refused(status: 400) }
        guard admits(means, client: client) else { return .refused(status: 403) }
        return isLimited(means) ? .limited(target: means) : .app(target: means)
    }

    /// Smuggling-shaped requests: each hides a second request (to `/admin`, with an id no client
    /// sent as a request) that a relay framing it wrongly would pass on. The scanner must refuse all.
    static func smuggling(_ id: String, variant: Int) -> [UInt8] {
        let hidden = "GET /admin/a HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: smuggled.\(id)\r\n\r\n"
        let chunkedEnd = "0\r\n\r\n"
        let text: String
        switch variant % 5 {
        case 0:  // CL.TE
            text = "POST /public/a HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\ncontent-length: \(chunkedEnd.utf8.count + hidden.utf8.count)\r\n"
                + "transfer-encoding: chunked\r\n\r\n" + chunkedEnd + hidden
        case 1:  // two lengths
            text = "POST /public/a HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\ncontent-length: 0\r\ncontent-length: \(hidden.utf8.count)\r\n\r\n" + hidden
        case 2:  // an obfuscated Transfer-Encoding
            text = "POST /public/a HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\ntransfer-encoding: chunked, identity\r\n\r\n" + chunkedEnd + hidden
        case 3:  // obs-fold hiding a length
            text = "POST /public/a HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\nx-pad: a\r\n content-length: \(hidden.utf8.count)\r\n\r\n" + hidden
        default:  // bare LF line ends
            text = "GET /public/a HTTP/1.1\nhost: sidecar\nx-correlation-id: \(id)\ncontent-length: \(hidden.utf8.count)\n\n" + hidden
        }
        return Array(text.utf8)
    }
}

/// What the clients sent and what the app received: the independent history the ingress checks
/// judge by. Kernel-level, so it survives crashes.
final class IngressLedger {
    struct Sent {
        var client: String
        var method: String
        var body: String
        var expected: IngressExpectation
    }
    /// Every request a client sent, by its id (`x-correlation-id`).
    var sent: [String: Sent] = [:]
    /// Ids the app received, with how often.
    var received: [String: Int] = [:]
}

/// The ingress promises as pure functions of what was seen (each returns the invariant and why, or nil).
enum IngressChecks {
    static let invariants = [
        "ingress.policy", "ingress.exact-request", "ingress.no-smuggling", "ingress.right-response", "ingress.rate-limit-bound", "ingress.cors",
        "ingress.complete", "ingress.liveness",
    ]

    /// A request arriving at the app: it must be one a client sent as such (`ingress.no-smuggling`),
    /// once, that the policy admits (`ingress.policy`), exactly as the client meant it (`ingress.exact-request`).
    static func arrival(id: String?, method: String, target: String, body: String, sent: IngressLedger.Sent?,
                        timesBefore: Int) -> (invariant: String, message: String)? {
        guard let id, let sent else {
            return ("ingress.no-smuggling", "the app got \(method) \(target) (id \(id ?? "none")), which no client sent as a request")
        }
        guard timesBefore == 0 else { return ("ingress.no-smuggling", "the app got \(id) a second time") }
        let meant: String
        switch sent.expected {
        case .app(let target), .limited(let target): meant = target
        default:
            return ("ingress.policy", "the app got \(method) \(target) (\(id)) from \(sent.client), which policy refuses (\(sent.expected))")
        }
        guard target == meant, method == sent.method, body == sent.body else {
            return ("ingress.exact-request", "\(id): the client meant \(sent.method) \(meant) with \(sent.body.utf8.count) body bytes; the app got \(method) \(target) with \(body.utf8.count)")
        }
        return nil
    }

    /// An answer reaching the client: it names its request and agrees with what the request should
    /// come to (`ingress.right-response`). Returns whether it is a success, or the violation.
    /// A request `writtenInPieces` may have had its rest held up (a partition, a clog) past the
    /// header timeout: 408 naming it is then a right answer too, though not a success.
    static func answer(status: Int, id: String?, for request: String, expected: IngressExpectation,
                       writtenInPieces: Bool = false) -> Result<Bool, CheckFailure> {
        if writtenInPieces, status == 408, id == request {
            switch expected {
            case .app, .limited, .tooLarge: return .success(false)
            default: break
            }
        }
        switch expected {
        case .malformed:
            guard [400, 501, 505].contains(status) else {
                return .failure(CheckFailure("\(request) is malformed, yet it was answered \(status)"))
            }
            return .success(true)
        case .refused(let refusal):
            guard status == refusal, id == request else {
                return .failure(CheckFailure("\(request) must be refused \(refusal); it got \(status) naming \(id ?? "no request")"))
            }
            return .success(true)
        case .preflight(let allowOrigin):
            guard id == request, status == (allowOrigin == nil ? 403 : 204) else {
                return .failure(CheckFailure("\(request) is a preflight to be \(allowOrigin == nil ? "refused 403" : "answered 204"); it got \(status) naming \(id ?? "no request")"))
            }
            return .success(true)
        case .limited:
            guard id == request else { return .failure(CheckFailure("\(request) got the answer (\(status)) meant for \(id ?? "no request")")) }
            guard [200, 429, 502, 503, 504].contains(status) else {
                return .failure(CheckFailure("\(request) is admitted by policy up to its rate, yet it was answered \(status)"))
            }
            return .success(status == 200 || status == 429)
        case .app:
            guard id == request else { return .failure(CheckFailure("\(request) got the answer (\(status)) meant for \(id ?? "no request")")) }
            guard status == 200 || [502, 503, 504].contains(status) else {
                return .failure(CheckFailure("\(request) is admitted by policy, yet it was answered \(status)"))
            }
            return .success(status == 200)
        case .tooLarge(let declared):
            guard id == request else { return .failure(CheckFailure("\(request) got the answer (\(status)) meant for \(id ?? "no request")")) }
            guard status == 413 || (!declared && [502, 503].contains(status)) else {
                return .failure(CheckFailure("\(request)'s body is over the limit\(declared ? " by its declared length" : ""), yet it was answered \(status)"))
            }
            return .success(status == 413)
        case .stalled:
            guard id == request else { return .failure(CheckFailure("\(request) got the answer (\(status)) meant for \(id ?? "no request")")) }
            guard [408, 502, 503].contains(status) else {
                return .failure(CheckFailure("\(request)'s body stalled for good, yet it was answered \(status)"))
            }
            return .success(status == 408)
        }
    }

    /// Fields of the app's answers that are hop-by-hop (`Connection` names `x-app-hop`): a relay
    /// drops them.
    static let appAnswerFields = [("connection", "x-app-hop"), ("x-app-hop", "1"), ("keep-alive", "timeout=5")]

    /// The body of the app's answer to request `id`.
    static func appAnswerBody(_ id: String?) -> String { "ok " + (id ?? "-") }

    /// `ingress.right-response` for an answer the app gave (a 200): the client gets the app's body
    /// for its request, whatever framing the app used, and none of its hop-by-hop fields.
    static func relayedAnswer(body: String, fields: (String) -> String?, for request: String) -> String? {
        guard body == appAnswerBody(request) else {
            return "\(request): the app's answer arrived as \(body.utf8.count) bytes \(body.prefix(40).debugDescription), not its body"
        }
        for (name, _) in appAnswerFields where name != "connection" {
            if let value = fields(name) { return "\(request): the app's hop-by-hop field \(name): \(value) reached the client" }
        }
        return nil
    }

    /// `ingress.cors`: an answer to a request from `origin` allows exactly the origin policy allows
    /// (`expected`), or none.
    static func cors(expected: String?, allowed: String?, for request: String) -> String? {
        guard allowed != expected else { return nil }
        return "\(request): the answer allows origin \(allowed ?? "none"), policy allows \(expected ?? "none")"
    }

    struct CheckFailure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }
}
