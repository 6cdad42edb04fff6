import Foundation
import HTTPSidecar

/// The checks both connection engines (ingress and egress) make on a request head before any work
/// on it, in one place: a bounded number of fields, framing decided again from the fields (not taken
/// from the scanner, so a scanner bug alone cannot relay a body under other framing), a target that
/// normalizes (`*` for OPTIONS only), and no protocol switch the sidecar cannot relay.
public enum RequestHeadCheck {
    /// What a head that passed is relayed with.
    public struct Passed {
        public var framing: RequestFraming
        public var target: RequestTarget
    }

    /// Checks `head`; a refusal is an answer of the sidecar's own, after which the connection closes
    /// (the bytes that follow cannot be trusted to be framed as the client meant).
    public static func check(_ head: ScannedRequestHead, maxHeaders: Int, escaped: RequestTarget.EscapedSeparators,
                             parameters: RequestTarget.PathParameters = .strip) -> Result<Passed, ErrorResponse> {
        if head.fieldCount > maxHeaders {
            return .failure(ErrorResponse(status: .requestHeaderFieldsTooLarge, code: "too_many_headers", message: "more than \(maxHeaders) header fields"))
        }
        let framing: RequestFraming
        switch RequestFraming.of(method: head.method.text, contentLength: head.values("content-length"), transferEncoding: head.values("transfer-encoding")) {
        case .success(let f): framing = f
        case .failure(let problem): return .failure(ErrorResponse(status: .badRequest, code: problem.code, message: "\(problem)"))
        }
        let target: RequestTarget
        switch RequestTarget.normalize(head.target, escaped: escaped, parameters: parameters) {
        case .success(let t) where t.path != "*" || head.method == .options: target = t
        case .success: return .failure(ErrorResponse(status: .badRequest, code: "bad_path", message: "* is a target for OPTIONS only"))
        case .failure(let problem): return .failure(ErrorResponse(status: .badRequest, code: "bad_path", message: "\(problem)"))
        }
        // A protocol switch (WebSocket) is not relayed: a clear 501 rather than an answer the client
        // cannot use. `h2c` alone is an offer a server may ignore, so that request goes on in HTTP/1.1.
        if head.scan.asksUpgrade, let wanted = unsupportedUpgrade(head.values("upgrade")) {
            return .failure(ErrorResponse(status: .notImplemented, code: "upgrade_not_supported", message: "the sidecar does not relay a switch to \(wanted)"))
        }
        return .success(Passed(framing: framing, target: target))
    }

    /// The first protocol an `Upgrade` field asks for that is not `h2c`, or nil.
    static func unsupportedUpgrade(_ values: [String]) -> String? {
        for value in values {
            for token in value.split(separator: ",") {
                let name = token.trimmingCharacters(in: .whitespaces)
                if name.isEmpty || name.lowercased() == "h2c" { continue }
                return String(name.prefix(40))
            }
        }
        return nil
    }
}
