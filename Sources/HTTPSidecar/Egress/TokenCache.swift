import MeshCore

/// An OAuth2 client-credentials access token for one upstream service, shared by every request to
/// it. Sans-IO: the caller performs the fetch it is told to and reports the result.
///
/// - A token is used until shortly before it expires (`expiryMargin`), so it does not expire in flight.
///   Its life counts from when the fetch started, not when the answer came: the endpoint's clock
///   started somewhere in between, and an answer held up by the network must not stretch it.
/// - After `refreshShare` of its usable life, one background refresh starts while requests keep
///   using the current token: nobody waits for a routine refresh.
/// - The caller asks before every attempt, retries included, so a request retried late in a long
///   deadline does not carry a token that expired meanwhile. The margin must still cover one
///   attempt's time on the wire.
/// - Without a usable token, the first request starts the one fetch and every request waits for it:
///   a thousand concurrent requests cause one call to the token endpoint.
/// - After a failed fetch with no usable token, requests fail fast until `retryAfterFailure` passes,
///   so a down token endpoint is not hammered by every request.
public struct TokenCache: Sendable {
    public struct Config: Hashable, Sendable {
        /// Start refreshing when this share of the usable life (lifetime minus margin) has passed.
        public var refreshShare = 0.8
        /// Stop using a token this long before it expires.
        public var expiryMargin: Duration = .seconds(5)
        /// Lifetime assumed when the token endpoint gives no `expires_in`.
        public var defaultLifetime: Duration = .seconds(300)
        /// Fail fast for this long after a failed fetch (when no token is usable).
        public var retryAfterFailure: Duration = .seconds(1)
        public init() {}
    }

    /// What a request should do.
    public enum Decision: Equatable, Sendable {
        /// Send with this token.
        case use(String)
        /// Send with this token, and start a background refresh (reporting its result as usual).
        case useAndRefresh(String)
        /// Start the fetch, then wait for its result.
        case fetchAndWait
        /// A fetch is running: wait for its result.
        case wait
        /// No token, and the last fetch failed recently: fail the request with this message.
        case fail(String)
    }

    private struct Token: Sendable {
        var value: String
        var refreshAt: MeshInstant
        var usableUntil: MeshInstant
    }

    public let config: Config
    private var token: Token?
    private var fetching = false
    /// When the fetch under way started: what the token's life counts from.
    private var fetchStartedAt: MeshInstant?
    private var lastFailure: (at: MeshInstant, message: String)?

    public init(_ config: Config = Config()) { self.config = config }

    /// Whether a fetch is under way.
    public var isFetching: Bool { fetching }

    public mutating func request(now: MeshInstant) -> Decision {
        if let token, now < token.usableUntil {
            if now >= token.refreshAt && !fetching {
                fetching = true
                fetchStartedAt = now
                return .useAndRefresh(token.value)
            }
            return .use(token.value)
        }
        // ci/mutants: token-fetch-not-shared (the next line)
        if fetching { return .wait }
        if let lastFailure, now - lastFailure.at < config.retryAfterFailure { return .fail(lastFailure.message) }
        fetching = true
        fetchStartedAt = now
        return .fetchAndWait
    }

    /// The fetch succeeded; `expiresIn` is the endpoint's `expires_in` (nil: the default lifetime).
    public mutating func fetched(_ value: String, expiresIn: Duration?, now: MeshInstant) {
        let lifetime = expiresIn.map { max($0, .seconds(1)) } ?? config.defaultLifetime
        // ci/mutants: token-margin-zero (the next line)
        let margin = min(config.expiryMargin, lifetime / 2)
        let issued = min(fetchStartedAt ?? now, now)
        token = Token(value: value, refreshAt: issued + (lifetime - margin) * config.refreshShare, usableUntil: issued + lifetime - margin)
        fetching = false
        fetchStartedAt = nil
        lastFailure = nil
    }

    /// The fetch failed; requests waiting for it fail with `message` (a usable token stays in use).
    public mutating func fetchFailed(_ message: String, now: MeshInstant) {
        fetching = false
        fetchStartedAt = nil
        lastFailure = (now, message)
    }

    /// The upstream refused `value` (401): stop using it, so the next request fetches a new one.
    public mutating func rejected(_ value: String) {
        if token?.value == value { token = nil }
    }
}

/// A ``TokenCache`` together with the requests waiting for its one fetch, so every driver (the NIO
/// token source, the simulated client) registers and wakes waiters the same way: a request that is
/// told to wait is kept here, and the fetch's result hands back everyone who waited for it.
public struct TokenBroker<Waiter> {
    public private(set) var cache: TokenCache
    private var waiters: [Waiter] = []

    public init(_ config: TokenCache.Config = TokenCache.Config()) { cache = TokenCache(config) }

    /// The cache's decision for a request; on `.wait` and `.fetchAndWait` the request is kept as a waiter.
    public mutating func request(now: MeshInstant, waiter: Waiter) -> TokenCache.Decision {
        let decision = cache.request(now: now)
        if decision == .wait || decision == .fetchAndWait { waiters.append(waiter) }
        return decision
    }

    /// The fetch succeeded: the waiters to wake with `value`.
    public mutating func fetched(_ value: String, expiresIn: Duration?, now: MeshInstant) -> [Waiter] {
        cache.fetched(value, expiresIn: expiresIn, now: now)
        return takeWaiters()
    }

    /// The fetch failed: the waiters to fail.
    public mutating func fetchFailed(_ message: String, now: MeshInstant) -> [Waiter] {
        cache.fetchFailed(message, now: now)
        return takeWaiters()
    }

    public mutating func rejected(_ value: String) { cache.rejected(value) }

    /// What a driver does for one request, whatever the cache decided: the answer it gets now (a
    /// token, or the failure; nil: it was kept as a waiter and is answered with the fetch's result),
    /// and whether to start the one fetch.
    public struct Ask: Equatable, Sendable {
        public var now: Result<String, TokenFailure>?
        public var startFetch: Bool
    }

    /// The recent failure a request fails fast with.
    public struct TokenFailure: Error, Equatable, Sendable {
        public var message: String
    }

    /// Asks for a token for `waiter` (see ``Ask``); `request(now:waiter:)` with the five cases folded.
    public mutating func ask(now: MeshInstant, waiter: Waiter) -> Ask {
        switch request(now: now, waiter: waiter) {
        case .use(let token): Ask(now: .success(token), startFetch: false)
        case .useAndRefresh(let token): Ask(now: .success(token), startFetch: true)
        case .fetchAndWait: Ask(now: nil, startFetch: true)
        case .wait: Ask(now: nil, startFetch: false)
        case .fail(let message): Ask(now: .failure(TokenFailure(message: message)), startFetch: false)
        }
    }

    private mutating func takeWaiters() -> [Waiter] {
        defer { waiters.removeAll() }
        return waiters
    }
}

extension TokenBroker: Sendable where Waiter: Sendable {}
