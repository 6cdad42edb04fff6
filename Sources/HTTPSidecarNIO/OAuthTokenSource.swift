import HTTPClientNIO
import HTTPSidecarEngines
import Foundation
import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Supplies `Authorization: Bearer` tokens for one service: the ``TokenBroker`` decides and keeps
/// the waiters, this fetches (HTTP Basic client authentication, form body) and wakes them.
final class OAuthTokenSource: Sendable {
    let settings: OAuthClientCredentials
    private let fetcher: HTTPFetcher
    private let target: String
    private let clock: any MeshClock
    private let logger: Logger
    private let state: NIOLockedValueBox<TokenBroker<EventLoopPromise<String>>>
    /// Token fetches started (for tests and metrics).
    let fetches = NIOLockedValueBox(0)

    init(_ settings: OAuthClientCredentials, group: any EventLoopGroup, clock: any MeshClock, logger: Logger) throws {
        guard let url = FetchURL(settings.tokenURL) else {
            throw ConfigError(key: "oauth.token_url", "expected an http:// or https:// URL, got '\(settings.tokenURL)'")
        }
        self.settings = settings
        // Token answers are small: 64 KiB is room for any real one, and bounds a hostile endpoint.
        self.fetcher = try HTTPFetcher(url, group: group, tls: settings.tls, timeout: settings.timeout, maxResponseBytes: 64 * 1024)
        self.target = url.target
        self.clock = clock
        self.logger = logger
        self.state = NIOLockedValueBox(TokenBroker(settings.cache))
    }

    /// A token for a request on `loop`: at once when cached, else after the one shared fetch.
    func token(on loop: any EventLoop) -> EventLoopFuture<String> {
        let now = clock.now
        let promise = loop.makePromise(of: String.self)
        let ask = state.withLockedValue { $0.ask(now: now, waiter: promise) }
        switch ask.now {
        case .success(let token)?: promise.succeed(token)
        case .failure(let failure)?: promise.fail(TokenError(message: failure.message))
        case nil: break  // a waiter: answered with the fetch's result
        }
        if ask.startFetch { fetch(on: loop) }
        return promise.futureResult
    }

    /// The upstream answered 401 to `token`: the next request fetches a new one.
    func rejected(_ token: String) {
        state.withLockedValue { $0.rejected(token) }
    }

    private func fetch(on loop: any EventLoop) {
        fetches.withLockedValue { $0 += 1 }
        var form = "grant_type=client_credentials"
        if let scope = settings.scope { form += "&scope=" + Self.formEncode(scope) }
        if let audience = settings.audience { form += "&audience=" + Self.formEncode(audience) }
        let basic = Data("\(Self.formEncode(settings.clientId)):\(Self.formEncode(settings.clientSecret))".utf8).base64EncodedString()
        let headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json"), ("authorization", "Basic \(basic)")]
        fetcher.fetch(method: .POST, target: target, headers: headers, body: ByteBuffer(string: form), on: loop).whenComplete { [self] result in
            let now = clock.now
            let outcome: Result<(String, Duration?), TokenError>
            switch result {
            case .success(let response):
                outcome = Self.parse(response)
            case .failure(let error):
                outcome = .failure(TokenError(message: "token endpoint \(settings.tokenURL) unreachable: \(error)"))
            }
            let waiters = state.withLockedValue { s -> [EventLoopPromise<String>] in
                switch outcome {
                case .success(let (token, expiresIn)): s.fetched(token, expiresIn: expiresIn, now: now)
                case .failure(let error): s.fetchFailed(error.message, now: now)
                }
            }
            if case .failure(let error) = outcome { logger.warning("oauth: \(error.message)") }
            for w in waiters {
                switch outcome {
                case .success(let (token, _)): w.succeed(token)
                case .failure(let error): w.fail(error)
                }
            }
        }
    }

    /// Reads `access_token` and `expires_in` from a 200 JSON answer.
    static func parse(_ response: AppResponse) -> Result<(String, Duration?), TokenError> {
        guard response.head.status == .ok else {
            return .failure(TokenError(message: "token endpoint answered \(response.head.status.code)"))
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any],
              let token = object["access_token"] as? String, !token.isEmpty else {
            return .failure(TokenError(message: "token endpoint answer has no access_token"))
        }
        // It goes into an Authorization header: visible ASCII only (RFC 6750 b64token), never CR/LF.
        guard token.utf8.count <= 16_384, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(TokenError(message: "token endpoint answered an access_token with characters a header cannot carry"))
        }
        return .success((token, lifetime(object["expires_in"])))
    }

    /// `expires_in` as a lifetime, whatever the token endpoint sent: a number or a numeric string,
    /// clamped to a day (a huge, negative, fractional-overflowing or non-numeric value never traps;
    /// it counts as unknown, and the cache's default applies).
    static func lifetime(_ value: Any?) -> Duration? {
        let seconds: Double
        switch value {
        case is Bool: return nil
        case let n as NSNumber: seconds = n.doubleValue
        case let text as String: guard let d = Double(text.trimmingCharacters(in: .whitespaces)) else { return nil }; seconds = d
        default: return nil
        }
        guard seconds.isFinite, seconds > 0 else { return nil }
        return .milliseconds(Int64(min(seconds, 86_400) * 1000))
    }

    /// `application/x-www-form-urlencoded` escaping (RFC 6749 appendix B for client credentials too).
    static func formEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed)?.replacingOccurrences(of: "%20", with: "+") ?? s
    }
}

/// No token could be obtained for a request.
struct TokenError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
