/// What the app decided about one pushed record.
public enum AppVerdict: String, Hashable, Sendable, CaseIterable {
    /// Processed: the record is finished.
    case success = "SUCCESS"
    /// Try again later (after the retry backoff; to the dead-letter topic after the last attempt).
    case retry = "RETRY"
    /// Never processable: write it to the dead-letter topic, then it is finished.
    case deadLetter = "DEADLETTER"
    /// Not wanted: the record is finished without processing.
    case drop = "DROP"
}

/// The app's answer to one push, as the driver decoded it.
public enum PushAnswer: Hashable, Sendable {
    /// Verdicts by record id (`topic/partition/offset`); a pushed record without one counts as RETRY.
    case verdicts([String: Verdict])
    /// No usable answer (connection failed, non-2xx status, empty or malformed body): the whole
    /// batch is retried.
    case failed(reason: String)

    /// One record's verdict with the app's optional reason.
    public struct Verdict: Hashable, Sendable {
        public var verdict: AppVerdict
        public var reason: String?
        public init(_ verdict: AppVerdict, reason: String? = nil) {
            self.verdict = verdict
            self.reason = reason
        }
    }
}

/// How a record ended.
public enum RecordOutcome: String, Hashable, Sendable {
    case succeeded, dropped, deadLettered
}
