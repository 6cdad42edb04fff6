/// A binary min-heap of scheduled events ordered by (time, sequence).
///
/// The sequence number makes ties deterministic: events due at the same instant run in the order
/// they were scheduled. The heap itself holds only plain keys; event payloads (which carry arrays and
/// closures) sit in a slab beside it, so sifting moves trivially-copyable values and never touches
/// reference counts.
struct EventQueue {
    private struct Key {
        var time: Int64
        var seq: UInt64
        var slot: Int32
        @inline(__always) func precedes(_ other: Key) -> Bool {
            time < other.time || (time == other.time && seq < other.seq)
        }
    }

    private var heap: [Key] = []
    private var slab: [SimEvent?] = []
    private var freeSlots: [Int32] = []
    private var nextSeq: UInt64 = 0

    init() {
        heap.reserveCapacity(1024)
        slab.reserveCapacity(1024)
    }

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: Int64? { heap.first?.time }

    mutating func push(time: Int64, _ event: SimEvent) {
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            slab[Int(free)] = event
        } else {
            slot = Int32(slab.count)
            slab.append(event)
        }
        heap.append(Key(time: time, seq: nextSeq, slot: slot))
        nextSeq &+= 1
        siftUp(heap.count - 1)
    }

    mutating func pop() -> (time: Int64, event: SimEvent)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        let event = slab[Int(top.slot)].take()!
        freeSlots.append(top.slot)
        return (top.time, event)
    }

    private mutating func siftUp(_ index: Int) {
        heap.withUnsafeMutableBufferPointer { h in
            var child = index
            let item = h[child]
            while child > 0 {
                let parent = (child - 1) / 2
                guard item.precedes(h[parent]) else { break }
                h[child] = h[parent]
                child = parent
            }
            h[child] = item
        }
    }

    private mutating func siftDown(_ index: Int) {
        heap.withUnsafeMutableBufferPointer { h in
            var parent = index
            let count = h.count
            let item = h[parent]
            while true {
                let left = 2 * parent + 1
                guard left < count else { break }
                let right = left + 1
                var best = left
                if right < count && h[right].precedes(h[left]) { best = right }
                guard h[best].precedes(item) else { break }
                h[parent] = h[best]
                parent = best
            }
            h[parent] = item
        }
    }
}
