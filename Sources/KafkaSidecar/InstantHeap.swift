import MeshCore

/// A binary min-heap of instants: the engine's pending wake-up times.
struct InstantHeap {
    private var items: [MeshInstant] = []

    var min: MeshInstant? { items.first }

    mutating func insert(_ t: MeshInstant) {
        items.append(t)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func removeMin() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < items.count && items[l] < items[smallest] { smallest = l }
            if r < items.count && items[r] < items[smallest] { smallest = r }
            guard smallest != i else { return }
            items.swapAt(i, smallest)
            i = smallest
        }
    }
}
