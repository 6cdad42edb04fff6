import HTTPSidecar
import MeshCore

/// The `retry`, `breaker` and `outlier` sections of an egress service, read into its pool
/// configuration: the one reader of these keys, used by `http-sidecar --config` (under
/// `egress.services.NAME`) and by the scenario files (under `http`), so both spell and check them
/// the same way.
public enum PoolSections {
    /// Reads the three sections of `service` into `pool` (absent keys keep `pool`'s values).
    public static func read<Section: ConfigSection>(_ service: inout Section, into pool: inout UpstreamPool.Config) throws {
        var retry = try service.child("retry")
        pool.retry.maxAttempts = try retry.int("max_attempts", min: 1) ?? pool.retry.maxAttempts
        pool.retry.retryNonIdempotent = try retry.bool("retry_non_idempotent") ?? pool.retry.retryNonIdempotent
        pool.retry.budgetRatio = try retry.double("budget_ratio") ?? pool.retry.budgetRatio
        pool.retry.budgetMinPerSecond = try retry.double("budget_min_per_second") ?? pool.retry.budgetMinPerSecond
        pool.retry.budgetWindow = try retry.duration("budget_window") ?? pool.retry.budgetWindow
        if pool.retry.budgetRatio < 0 { throw ConfigError(key: retry.name("budget_ratio"), "must not be negative") }
        if pool.retry.budgetWindow < .milliseconds(10) { throw ConfigError(key: retry.name("budget_window"), "must be at least 10ms") }
        try retry.done()
        var breaker = try service.child("breaker")
        pool.breaker.consecutiveFailures = try breaker.int("consecutive_failures", min: 1) ?? pool.breaker.consecutiveFailures
        pool.breaker.openDuration = try breaker.duration("open_duration") ?? pool.breaker.openDuration
        pool.breaker.halfOpenProbes = try breaker.int("half_open_probes", min: 1) ?? pool.breaker.halfOpenProbes
        try breaker.done()
        var outlier = try service.child("outlier")
        pool.outlier.consecutiveServerErrors = try outlier.int("consecutive_5xx", min: 1) ?? pool.outlier.consecutiveServerErrors
        pool.outlier.consecutiveGatewayErrors = try outlier.int("consecutive_gateway_errors", min: 1) ?? pool.outlier.consecutiveGatewayErrors
        pool.outlier.baseEjectionTime = try outlier.duration("base_ejection_time") ?? pool.outlier.baseEjectionTime
        pool.outlier.maxEjectedPercent = try outlier.int("max_ejected_percent", min: 0) ?? pool.outlier.maxEjectedPercent
        if pool.outlier.maxEjectedPercent > 100 { throw ConfigError(key: outlier.name("max_ejected_percent"), "must be at most 100") }
        try outlier.done()
    }
}
