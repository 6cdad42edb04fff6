import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1
import SidecarAuth

/// The ingress middleware as the engine runs it: ``IngressAdmission`` decides at the head (IP filter,
/// CORS, rate limit, the request as the app will see it); JWT runs at once for a token seen before,
/// else off the loop through the driver.
extension IngressConnection {
    func begin(_ head: ScannedRequestHead) {
        let admitted: IngressAdmission.Admitted
        switch IngressAdmission.decide(head, client: client, scheme: scheme, policy: policy, now: io.now, random: &random) {
        case .refuse(let error, let close):
            io.observe(.refused(code: error.code))
            return refuse(head, status: error.status, headers: error.headers + [("content-type", "application/json")],
                          body: error.body(allocator: allocator), close: close)
        case .answer(let status, let headers, let close):
            io.observe(.preflight)
            return refuse(head, status: status, headers: headers, body: nil, close: close)
        case .admit(let a):
            admitted = a
        }
        io.observe(.admitted(path: admitted.path))
        let ex = IngressExchange(head: head, admitted: admitted, started: io.now)
        io.exchangeBegan()
        state = .held(ex, parts: [])
        if admitted.framing.hasBody { expectBody() }
        // ci/mutants: jwt-skipped (the next line)
        if admitted.needsJWT, let jwt = policy.services.jwt {
            authenticate(jwt, ex)
        } else {
            connect()
        }
    }

    /// Verifies the bearer token through the driver: the verdict now, or later through ``verified(_:)``
    /// (parts that arrive meanwhile are kept).
    func authenticate(_ jwt: JWTAuthenticator, _ ex: IngressExchange) {
        if let verdict = io.verify(jwt, authorization: ex.head.first("authorization"), path: ex.path) {
            verified(.success(verdict))
        }
    }

    /// The verdict on the held request's token: on to the rate limit after JWT and the app, or answered.
    public func verified(_ result: Result<Result<VerifiedToken, AuthFailure>, any Error>) {
        guard case .held(let ex, _) = state else { return }
        switch result {
        case .success(.success(let token)):
            // What the route lists after JWT (only a rate limit may follow it).
            for step in ex.afterJWT where step == .rateLimit {
                if let refusal = IngressAdmission.rateLimit(policy, ex.route, head: ex.head, subject: token.subject ?? token.clientId,
                                                            client: client, now: io.now, &ex.responseHeaders) {
                    return answerInsteadOfApp(ex, refusal)
                }
            }
            connect()
        case .success(.failure(let failure)):
            answerInsteadOfApp(ex, ErrorResponse(
                status: HTTPResponseStatus(statusCode: failure.status), code: failure.code, message: failure.message,
                headers: ex.responseHeaders + [("www-authenticate", failure.wwwAuthenticate)]))
        case .failure(let error):
            answerInsteadOfApp(ex, ErrorResponse(status: .internalServerError, code: "auth_error", message: "\(error)", headers: ex.responseHeaders))
        }
    }
}
