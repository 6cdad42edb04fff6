/// A binary min-heap of scheduled events ordered by (time, sequence).
///
/// The sequence number makes ties deterministic: events due at the same instant run in the order
/// they were scheduled.
struct EventQueue {
    struct Entry {
        var time: Int64
        var seq: UInt64
        var event: SimEvent
        @inline(__always) func precedes(_ other: Entry) -> Bool {
            time < other.time || (time == other.time && seq < other.seq)
        }
    }

    private(set) var storage: [Entry] = []
    private var nextSeq: UInt64 = 0

    init() { storage.reserveCapacity(1024) }

    var count: Int { storage.count }
    var isEmpty: Bool { storage.isEmpty }
    var nextTime: Int64? { storage.first?.time }

    mutating func push(time: Int64, _ event: SimEvent) {
        storage.append(Entry(time: time, seq: nextSeq, event: event))
        nextSeq &+= 1
        siftUp(storage.count - 1)
    }

    mutating func pop() -> Entry? {
        guard !storage.isEmpty else { return nil }
        if storage.count == 1 { return storage.removeLast() }
        let top = storage[0]
        storage[0] = storage.removeLast()
        siftDown(0)
        return top
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        let item = storage[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard item.precedes(storage[parent]) else { break }
            storage[child] = storage[parent]
            child = parent
        }
        storage[child] = item
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        let count = storage.count
        let item = storage[parent]
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            var best = left
            if right < count && storage[right].precedes(storage[left]) { best = right }
            guard storage[best].precedes(item) else { break }
            storage[parent] = storage[best]
            parent = best
        }
        storage[parent] = item
    }
}
