/// Runs an ``AggregationPlan`` over a query's input records: each record updates its group's
/// accumulators, in every window it falls in, and each updated group's row is output
/// (`EMIT CHANGES`).
///
/// Event time is the plan's timestamp column, else the record's timestamp. Stream time is the
/// highest event time seen. A window closes when stream time reaches its end plus the grace
/// period (`GRACE PERIOD`, default ``defaultGrace`` as in Kafka Streams); a record only for closed
/// windows is late: counted in ``lateRecords`` and dropped. Closed windows are evicted from memory.
/// Records with a NULL group key or event time are skipped and counted, as ksqlDB does.
public struct AggregationOperator: Sendable {
    public let plan: AggregationPlan
    /// The grace period when the query names none.
    public static let defaultGrace: Int64 = 86_400_000

    public struct GroupKey: Hashable, Sendable {
        public var values: [SQLValue]
        /// The window's start; nil when the aggregation is not windowed.
        public var windowStart: Int64?
    }

    public struct Group: Hashable, Sendable {
        public var accumulators: [Accumulator]
        /// The latest event time of the group's records (its rows' timestamp).
        public var timestamp: Int64
        /// Whether a row was output for the group (so a failing HAVING deletes it).
        public var emitted = false
    }

    public private(set) var groups: [GroupKey: Group] = [:]
    public private(set) var streamTime: Int64 = .min
    public private(set) var lateRecords: Int64 = 0
    public private(set) var skippedRecords: Int64 = 0
    private let grace: Int64
    private let windowSize: Int64?
    /// The earliest moment (in stream time) an open window closes; nil when none is open.
    private var nextClose: Int64?

    /// Whether changed groups are kept for ``takeChanges()`` (a state store reads them; a changed
    /// group of a closed window stays in memory until it is taken).
    public var tracksChanges = false
    /// Groups changed since the last ``takeChanges()``, in the order they first changed.
    private var changed: [GroupKey] = []
    private var changedSet: Set<GroupKey> = []

    public init(_ plan: AggregationPlan) {
        self.plan = plan
        grace = plan.window.flatMap { $0.grace?.milliseconds } ?? Self.defaultGrace
        windowSize = plan.window.flatMap { w in
            switch w.shape {
            case .tumbling(let size), .hopping(let size, _): size.milliseconds
            case .session(let gap): gap.milliseconds
            }
        }
    }

    /// An operator resumed from stored state: its groups and its stream time. Windows that closed
    /// are not taken back into memory (their rows stay in the store).
    public init(_ plan: AggregationPlan, restoring groups: [GroupKey: Group], streamTime: Int64) {
        self.init(plan)
        self.streamTime = streamTime
        for (key, group) in groups {
            if let start = key.windowStart, let size = windowSize {
                let closes = start.adding(size).adding(grace)
                if closes.isClosed(at: streamTime) { continue }
                nextClose = min(nextClose ?? closes, closes)
            }
            self.groups[key] = group
        }
    }

    /// The groups changed since the last call, with their state now, in the order they first
    /// changed: what a batch writes to the store.
    public mutating func takeChanges() -> [(GroupKey, Group)] {
        defer {
            changed.removeAll()
            changedSet.removeAll()
        }
        return changed.compactMap { key in groups[key].map { (key, $0) } }
    }

    /// The changes `input` makes: one output per group (and window) it updated, in window order.
    public mutating func process(_ input: QueryInput) -> [QueryOutput] {
        if let filter = plan.filter, !filter.evaluate(input.row).isTrue { return [] }
        let keyValues = plan.groupBy.map { $0.evaluate(input.row) }
        guard !keyValues.contains(where: \.isNull), let time = eventTime(input) else {
            skippedRecords += 1
            return []
        }
        streamTime = max(streamTime, time)
        let windows: [Range<Int64>?]
        if let shape = plan.window?.shape {
            windows = WindowAssigner.windows(containing: time, shape).filter { !$0.upperBound.adding(grace).isClosed(at: streamTime) }
            if windows.isEmpty {
                lateRecords += 1
                return []
            }
        } else {
            windows = [nil]
        }
        let arguments = plan.aggregates.map { $0.argument?.evaluate(input.row) ?? .null }
        var outputs: [QueryOutput] = []
        for window in windows {
            let key = GroupKey(values: keyValues, windowStart: window?.lowerBound)
            var group = groups[key] ?? Group(accumulators: plan.aggregates.map(Accumulator.initial), timestamp: time)
            for i in plan.aggregates.indices { group.accumulators[i] = group.accumulators[i].adding(arguments[i], plan.aggregates[i]) }
            group.timestamp = max(group.timestamp, time)
            if let output = output(for: key, &group, window: window) { outputs.append(output) }
            groups[key] = group
            if tracksChanges, changedSet.insert(key).inserted { changed.append(key) }
            if let window {
                let closes = window.upperBound.adding(grace)
                nextClose = min(nextClose ?? closes, closes)
            }
        }
        evictClosedWindows()
        return outputs
    }

    /// The row a group outputs now: its projections if HAVING holds, else a tombstone when a row
    /// was output before (and nothing when none was).
    private func output(for key: GroupKey, _ group: inout Group, window: Range<Int64>?) -> QueryOutput? {
        var row = key.values
        if let window { row += [.bigint(window.lowerBound), .bigint(window.upperBound)] }
        row += group.accumulators.map(\.result)
        if let having = plan.having, !having.evaluate(row).isTrue {
            guard group.emitted else { return nil }
            group.emitted = false
            return QueryOutput(key: key.values[0], values: nil, window: window, timestamp: group.timestamp)
        }
        group.emitted = true
        return QueryOutput(key: key.values[0], values: plan.projections.map { $0.evaluate(row) }, window: window, timestamp: group.timestamp)
    }

    private func eventTime(_ input: QueryInput) -> Int64? {
        guard let column = plan.timestampColumn else { return input.timestamp }
        switch input.row[column] {
        case .timestamp(let ms), .bigint(let ms): return ms
        default: return nil
        }
    }

    /// Drops windows that closed: they can change no more (their rows are in the output already).
    /// A group changed since the last ``takeChanges()`` stays until it is taken.
    private mutating func evictClosedWindows() {
        guard let close = nextClose, close.isClosed(at: streamTime) else { return }
        nextClose = nil
        for (key, _) in groups {
            guard let start = key.windowStart, let size = windowSize else { continue }
            let closes = start.adding(size).adding(grace)
            if closes.isClosed(at: streamTime) && !changedSet.contains(key) {
                groups[key] = nil
            } else {
                nextClose = min(nextClose ?? closes, closes)
            }
        }
    }
}

private extension Int64 {
    /// Whether a window closing at this stream time is closed when stream time is `streamTime`.
    func isClosed(at streamTime: Int64) -> Bool { self <= streamTime }

    /// `self + d`, saturating at `Int64.max` (a window at the end of time never closes).
    func adding(_ d: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(d)
        return overflow ? (d > 0 ? .max : .min) : sum
    }
}

/// The windows an event time falls in, ascending by start.
public enum WindowAssigner {
    public static func windows(containing time: Int64, _ shape: WindowSpec.Shape) -> [Range<Int64>] {
        switch shape {
        case .tumbling(let size):
            guard let s = size.milliseconds, s > 0 else { return [] }
            let start = TimeText.floorDivide(time, s).0 &* s
            return [start..<(start.addingReportingOverflow(s).overflow ? .max : start + s)]
        case .hopping(let size, let advance):
            guard let s = size.milliseconds, let a = advance.milliseconds, s > 0, a > 0 else { return [] }
            // Starts are multiples of the advance with start <= time < start + size.
            let last = TimeText.floorDivide(time, a).0 &* a
            var windows: [Range<Int64>] = []
            var start = last
            // ci/mutants: hopping-window-too-early (the next line)
            while start > time &- s, windows.count < 10_000 {
                if !start.addingReportingOverflow(s).overflow { windows.append(start..<(start + s)) }
                let (previous, overflow) = start.subtractingReportingOverflow(a)
                if overflow { break }
                start = previous
            }
            return windows.reversed()
        case .session:
            return []
        }
    }
}
