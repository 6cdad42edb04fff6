import MeshCore

/// One fetched record as the engine tracks it until it is finished.
struct RecordSlot {
    /// Where a record stands.
    ///
    /// Transitions: `waiting` → `inFlight` (pushed) → `finished` (SUCCESS/DROP) | `waiting` (RETRY,
    /// failed push, attempts left) | `deadLettering` (DEADLETTER, or attempts used up);
    /// `deadLettering` → `finished` (broker acknowledged the copy) | `deadLetterWaiting` (refused);
    /// `deadLetterWaiting` → `deadLettering` when due.
    enum State: Equatable {
        case waiting(due: MeshInstant)
        case inFlight(batch: UInt64)
        case deadLettering(ticket: UInt64)
        case deadLetterWaiting(due: MeshInstant)
        case finished(RecordOutcome)
    }

    let record: ConsumerRecord
    var state: State
    /// Pushes so far.
    var attempts = 0
    /// Dead-letter writes refused so far.
    var deadLetterFailures = 0
    var firstFailure: MeshInstant?
    var lastReason = ""
    /// When it was fetched (an audit entry's latency runs from here to its finish).
    let fetchedAt: MeshInstant

    init(_ record: ConsumerRecord, fetchedAt: MeshInstant) {
        self.record = record
        self.fetchedAt = fetchedAt
        state = .waiting(due: .zero)
    }

    var isFinished: Bool { if case .finished = state { true } else { false } }
    /// The app is done with it (finished, or only its dead-letter copy is outstanding): it is not
    /// pushed again, though until it is finished it still holds back later records of its lane.
    var isSettledForApp: Bool {
        switch state {
        case .finished, .deadLettering, .deadLetterWaiting: true
        case .waiting, .inFlight: false
        }
    }
}

/// The records of one assigned partition, in offset order, and the commit watermark they allow.
/// A class: the engine changes it in place on every event (a value held in a dictionary would be
/// copied whole each time).
final class PartitionLedger {
    /// Unfinished records and the finished ones behind the first unfinished, in offset order; the
    /// finished prefix is dropped as it forms.
    private(set) var slots: [RecordSlot] = []
    private var head = 0
    /// The offset after the highest record fetched, once one was.
    private(set) var nextOffset: Int64?
    /// The offset the broker confirmed as committed during this assignment.
    var committed: Int64?
    /// The first offset fetched in this assignment (where the group's commit stood).
    private(set) var firstOffset: Int64?
    /// Set while a revocation waits for this partition's work in flight.
    var revocation: UInt64?
    /// Distinguishes this assignment from a later one of the same partition.
    let epoch: UInt64

    init(epoch: UInt64) { self.epoch = epoch }

    var count: Int { slots.count - head }
    var indices: Range<Int> { head..<slots.count }
    /// Records waiting to have their dead-letter copy written.
    private(set) var waitingDeadLetters = 0

    subscript(i: Int) -> RecordSlot {
        get { slots[i] }
        _modify { yield &slots[i] }
    }

    /// Moves slot `i` to `state`, keeping the count of waiting dead letters.
    func set(_ i: Int, _ state: RecordSlot.State) {
        if case .deadLetterWaiting = slots[i].state { waitingDeadLetters -= 1 }
        if case .deadLetterWaiting = state { waitingDeadLetters += 1 }
        slots[i].state = state
    }

    /// Appends a fetched record; ignores one at or below an offset already fetched (a re-fetch).
    func append(_ record: ConsumerRecord, at now: MeshInstant) -> Bool {
        if let next = nextOffset, record.offset < next { return false }
        slots.append(RecordSlot(record, fetchedAt: now))
        if firstOffset == nil { firstOffset = record.offset }
        nextOffset = record.offset + 1
        return true
    }

    /// The slot holding `offset`, if it is still tracked.
    func index(of offset: Int64) -> Int? {
        var lo = head, hi = slots.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if slots[mid].record.offset < offset { lo = mid + 1 } else { hi = mid }
        }
        return lo < slots.count && slots[lo].record.offset == offset ? lo : nil
    }

    /// The commit watermark: the lowest unfinished offset, or the offset after the last fetched
    /// record when all are finished; `nil` before anything was fetched.
    ///
    /// This is the one place that decides how far a commit may go: never past an unfinished record.
    var watermark: Int64? {
        // ci/mutants: commit-highest-seen, commit-before-dlq-ack (the next line)
        for i in head..<slots.count where !slots[i].isFinished { return slots[i].record.offset }
        return nextOffset
    }

    /// The watermark when it passed what is already committed (or, before any commit, the offset
    /// fetching started at): the offset worth committing.
    var commitDue: Int64? {
        guard let mark = watermark, let base = committed ?? firstOffset, mark > base else { return nil }
        return mark
    }

    /// Drops the finished records in front, which no longer matter to the watermark.
    func compact() {
        while head < slots.count && slots[head].isFinished { head += 1 }
        if head > 64 && head * 2 > slots.count {
            slots.removeFirst(head)
            head = 0
        }
    }

    /// Records of this partition in flight to the app or to the dead-letter topic.
    var hasWorkInFlight: Bool {
        for i in head..<slots.count {
            switch slots[i].state {
            case .inFlight, .deadLettering: return true
            default: continue
            }
        }
        return false
    }
}
