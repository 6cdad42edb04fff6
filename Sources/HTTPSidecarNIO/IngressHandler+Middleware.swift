import Foundation
import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1
import SidecarAuth

/// The ingress middleware as the NIO handler runs it: ``IngressAdmission`` decides at the head (IP
/// filter, CORS, rate limit, the request as the app will see it); JWT runs off the event loop when
/// the token is new.
extension IngressHandler {
    // MARK: Middleware decisions

    func begin(_ context: ChannelHandlerContext, _ head: ScannedRequestHead) {
        let admitted: IngressAdmission.Admitted
        switch IngressAdmission.decide(head, client: client, scheme: scheme, policy: shared.policy, now: shared.clock.now, random: &random) {
        case .refuse(let error, let close):
            return refuse(context, head, error, close: close)
        case .answer(let status, let headers, let close):
            return refuse(context, head, status: status, headers: headers, body: nil, close: close)
        case .admit(let a):
            admitted = a
        }
        let ex = Exchange(head: head, upstreamHead: admitted.upstreamHead, correlationId: admitted.correlationId, traceId: admitted.traceId,
                          responseHeaders: admitted.responseHeaders, started: shared.clock.now, keepAlive: admitted.keepAlive)
        ex.route = admitted.route
        ex.responseRules = admitted.responseRules
        ex.afterJWT = admitted.afterJWT
        ex.path = admitted.path
        shared.metrics.inFlight("ingress", shared.inFlight.increment())
        if head.scan.expectsContinue {
            wire.sendAndFlush(.head(HTTPResponseHead(version: .http1_1, status: .continue)))
        }
        state = .held(ex, parts: [])
        if admitted.framing.hasBody { armHeaderDeadline() }  // the body must keep coming, too
        if admitted.needsJWT, let jwt = shared.config.jwt { authenticate(context, jwt, head, path: admitted.path) } else { connect(context) }
    }

    /// Verifies the bearer token: at once for a token seen before (or a missing one), else off the
    /// event loop (the signature check) and back.
    func authenticate(_ context: ChannelHandlerContext, _ jwt: JWTAuthenticator, _ head: ScannedRequestHead, path: String) {
        let authorization = head.first("authorization")
        if let verdict = jwt.authenticateWithoutWaiting(authorization: authorization, path: path) {
            return authenticated(context, .success(verdict))
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await jwt.authenticate(authorization: authorization, path: path)
        }.whenComplete { result in
            let (handler, context) = bound.value
            handler.authenticated(context, result)
        }
    }

    func authenticated(_ context: ChannelHandlerContext, _ result: Result<Result<VerifiedToken, AuthFailure>, any Error>) {
        guard case .held(let ex, _) = state else { return }
        switch result {
        case .success(.success(let token)):
            // What the route lists after JWT (only a rate limit may follow it).
            for step in ex.afterJWT where step == .rateLimit {
                if let refusal = IngressAdmission.rateLimit(shared.policy, ex.route, head: ex.head, subject: token.subject ?? token.clientId,
                                                            client: client, now: shared.clock.now, &ex.responseHeaders) {
                    return answerWithoutApp(context, ex, refusal)
                }
            }
            connect(context)
        case .success(.failure(let failure)):
            answerWithoutApp(context, ex, ErrorResponse(
                status: HTTPResponseStatus(statusCode: failure.status), code: failure.code, message: failure.message,
                headers: ex.responseHeaders + [("www-authenticate", failure.wwwAuthenticate)]))
        case .failure(let error):
            answerWithoutApp(context, ex, ErrorResponse(status: .internalServerError, code: "auth_error", message: "\(error)", headers: ex.responseHeaders))
        }
    }

}
