import MeshCore

/// The simulated network between hosts: datagrams and ordered streams, with latency, loss,
/// duplication, reordering, bounded capacity, partitions, clogging and hold/release.
///
/// Datagrams may be lost, duplicated and reordered. Streams deliver bytes in order or not at all, like
/// TCP: loss turns into retransmission delay, a partition holds segments until it heals, a crash resets
/// the peer's connections. Connecting to a host that is down or not listening is refused.
public final class SimNetwork {
    public var config: NetworkConfig
    /// Multiplies every latency; a latency-spike fault raises it for a while.
    public var latencyFactor: Double = 1

    private unowned let simulation: Simulation
    private var random: SeededRandom
    private var hostCount = 0
    /// `blocked[from * hostCount + to]`: messages from `from` to `to` are cut.
    private var blocked: [Bool] = []
    private var clogged: [Bool] = []
    private var holding: [Bool] = []
    private var inFlight: [Int] = []
    private var streams: [StreamState] = []
    /// Messages waiting for a heal, an unclog or a release, in the order they were held.
    private var held: [SimEvent] = []
    /// Segments sent so far (each one's ``Segment/sequence``).
    private var segmentsSent: UInt64 = 0
    private var nextMessageId: Int64 = 0

    struct StreamState {
        var hosts: (HostID, HostID)
        var incarnations: (UInt32, UInt32)
        var port: Int
        /// Side 0 (client) or 1 (server) has closed or crashed.
        var closed: (Bool, Bool) = (false, false)
        var established = false
        var dead = false
        /// Time of the last scheduled delivery in each direction, to keep order.
        var lastDelivery: (Int64, Int64) = (0, 0)
        /// Segments held per direction; while non-zero, later segments in that direction are held too.
        var heldCount: (Int, Int) = (0, 0)
        /// Segments sent, and taken by the receiver in order, per direction (see ``Segment/place``).
        var placed: (Int, Int) = (0, 0)
        var taken: (Int, Int) = (0, 0)
        /// Segments that arrived before one sent ahead of them: they wait for it.
        var early: [Segment] = []

        func host(_ side: Int) -> HostID { side == 0 ? hosts.0 : hosts.1 }
        func incarnation(_ side: Int) -> UInt32 { side == 0 ? incarnations.0 : incarnations.1 }
    }

    init(simulation: Simulation, config: NetworkConfig, random: SeededRandom) {
        self.simulation = simulation
        self.config = config
        self.random = random
    }

    func hostAdded() {
        let old = hostCount
        hostCount += 1
        var grown = Array(repeating: false, count: hostCount * hostCount)
        for f in 0..<old { for t in 0..<old { grown[f * hostCount + t] = blocked[f * old + t] } }
        blocked = grown
        var grownFlight = Array(repeating: 0, count: hostCount * hostCount)
        for f in 0..<old { for t in 0..<old { grownFlight[f * hostCount + t] = inFlight[f * old + t] } }
        inFlight = grownFlight
        clogged.append(false)
        holding.append(false)
    }

    private var now: Int64 { simulation.now.nanoseconds }
    private var log: EventLog { simulation.log }

    // MARK: Fault controls

    /// Cuts messages from `a` to `b` (and back, unless `oneWay`).
    public func partition(_ a: HostID, _ b: HostID, oneWay: Bool = false) {
        blocked[a * hostCount + b] = true
        if !oneWay { blocked[b * hostCount + a] = true }
    }

    /// Removes every partition and re-sends the stream segments they held.
    public func healAll() {
        for i in blocked.indices { blocked[i] = false }
        releaseHeld()
    }

    public func isBlocked(_ a: HostID, _ b: HostID) -> Bool { blocked[a * hostCount + b] }

    /// Delays every message to or from `host` until ``unclog(_:)``.
    public func clog(_ host: HostID) { clogged[host] = true }

    public func unclog(_ host: HostID) {
        clogged[host] = false
        releaseHeld()
    }

    /// Holds messages arriving at `host` (including those already in flight) until ``release(_:)``.
    public func hold(_ host: HostID) { holding[host] = true }

    /// Releases held messages to `host`, each with a fresh latency (so they may arrive reordered).
    public func release(_ host: HostID) {
        holding[host] = false
        releaseHeld()
    }

    // MARK: Latency

    /// One message's latency drawn from the network's model (for protocol models layered on the kernel).
    public func sampleLatency() -> Duration { .nanoseconds(latency()) }

    /// Whether a message from `a` to `b` would get through now (not partitioned, neither end clogged).
    public func canReach(_ a: HostID, _ b: HostID) -> Bool {
        !blocked[a * hostCount + b] && !clogged[a] && !clogged[b] && !holding[b]
    }

    /// Whether a protocol model's message is lost now (the network's loss rate; for request/response
    /// models layered on the kernel, a lost message is a connection broken mid-request).
    public func loses() -> Bool { config.loss > 0 && random.chance(config.loss) }

    private func latency() -> Int64 {
        var ns = Double(config.latencyMin.nanoseconds)
        let tail = Double(config.latencyTailMean.nanoseconds)
        if tail > 0 { ns += random.nextExponential(mean: tail) }
        if config.reorder > 0 && random.chance(config.reorder) {
            ns += Double(config.reorderDelay.nanoseconds) * random.nextUnit()
        }
        return Int64(ns * latencyFactor)
    }

    // MARK: Datagrams

    func sendDatagram(from: HostID, to: HostID, port: Int, _ payload: [UInt8]) {
        nextMessageId += 1
        let d = Datagram(from: from, to: to, port: port, payload: payload, id: nextMessageId)
        log.record(now, from, .send, Int64(to), d.id, payload: payload)
        if clogged[from] || clogged[to] {
            log.record(now, from, .held, Int64(to), d.id)
            held.append(.datagram(d))
            return
        }
        transmit(d)
    }

    private func transmit(_ d: Datagram) {
        let link = d.from * hostCount + d.to
        if blocked[link] {
            drop(d, reason: "partition", code: 1)
            return
        }
        if config.loss > 0 && random.chance(config.loss) {
            drop(d, reason: "loss", code: 2)
            return
        }
        if config.capacity > 0 && inFlight[link] >= config.capacity {
            drop(d, reason: "capacity", code: 3)
            return
        }
        inFlight[link] += 1
        simulation.enqueue(at: now &+ latency(), .datagram(d))
        if config.duplicate > 0 && random.chance(config.duplicate) {
            inFlight[link] += 1
            log.record(now, d.from, .duplicate, Int64(d.to), d.id)
            simulation.coverage.hit("net.duplicate")
            simulation.enqueue(at: now &+ latency(), .datagram(d))
        }
    }

    private func drop(_ d: Datagram, reason: String, code: Int64) {
        log.record(now, d.from, .drop, d.id, code)
        simulation.coverage.hit("net.drop." + reason)
    }

    func arrive(_ d: Datagram) {
        inFlight[d.from * hostCount + d.to] -= 1
        if blocked[d.from * hostCount + d.to] {
            drop(d, reason: "partition", code: 1)
            return
        }
        if holding[d.to] || clogged[d.to] {
            log.record(now, d.to, .held, Int64(d.from), d.id)
            held.append(.datagram(d))
            return
        }
        let host = simulation.hosts[d.to]
        guard host.isUp else {
            drop(d, reason: "host-down", code: 4)
            return
        }
        log.record(now, d.to, .deliver, Int64(d.from), d.id, payload: d.payload)
        host.deliver(.datagram(from: d.from, port: d.port, payload: d.payload))
    }

    // MARK: Streams

    func connect(from: HostID, to: HostID, port: Int) -> StreamID {
        let id = streams.count
        let inc = simulation.hosts[from].incarnation
        streams.append(StreamState(hosts: (from, to), incarnations: (inc, 0), port: port))
        log.record(now, from, .connect, Int64(to), Int64(id))
        sendSegment(Segment(stream: id, kind: .syn, fromSide: 0, payload: []))
        return id
    }

    func write(_ id: StreamID, from: HostID, _ payload: [UInt8]) {
        guard id < streams.count else { return }
        let s = streams[id]
        let side = s.hosts.0 == from && s.incarnations.0 == simulation.hosts[from].incarnation ? 0 : 1
        guard !s.dead, s.established, !(side == 0 ? s.closed.0 : s.closed.1) else { return }
        log.record(now, from, .data, Int64(id), Int64(payload.count), payload: payload)
        sendSegment(Segment(stream: id, kind: .data, fromSide: side, payload: payload))
    }

    func close(_ id: StreamID, from: HostID) {
        guard id < streams.count, !streams[id].dead else { return }
        let side = streams[id].hosts.0 == from ? 0 : 1
        if side == 0 {
            guard !streams[id].closed.0 else { return }
            streams[id].closed.0 = true
        } else {
            guard !streams[id].closed.1 else { return }
            streams[id].closed.1 = true
        }
        log.record(now, from, .close, Int64(id), Int64(side))
        if !streams[id].established {
            // Abandoning a connection attempt: whatever arrives later is ignored.
            streams[id].dead = true
            return
        }
        sendSegment(Segment(stream: id, kind: .fin, fromSide: side, payload: []))
        if streams[id].closed.0 && streams[id].closed.1 { streams[id].dead = true }
    }

    /// Closes a stream abortively, as `SO_LINGER` 0 does: what `from` wrote and the network still
    /// holds (a partition, a clog) is discarded rather than retransmitted after the heal, and the peer
    /// sees `.reset` instead of the rest of the stream. Segments already on the wire still arrive.
    func abort(_ id: StreamID, from: HostID) {
        guard id < streams.count, !streams[id].dead else { return }
        let s = streams[id]
        let side = s.hosts.0 == from && s.incarnations.0 == simulation.hosts[from].incarnation ? 0 : 1
        guard !(side == 0 ? s.closed.0 : s.closed.1) else { return }
        if side == 0 { streams[id].closed.0 = true } else { streams[id].closed.1 = true }
        let before = held.count
        held.removeAll {
            guard case .segment(let seg) = $0 else { return false }
            return seg.stream == id && seg.fromSide == side
        }
        if side == 0 { streams[id].heldCount.0 = 0 } else { streams[id].heldCount.1 = 0 }
        log.record(now, from, .reset, Int64(id), Int64(before - held.count))
        streams[id].dead = true
        let peerClosed = side == 0 ? s.closed.1 : s.closed.0
        if s.established && !peerClosed {
            sendSegment(Segment(stream: id, kind: .rst, fromSide: side, payload: []))
        }
    }

    /// Resets every open stream of a crashed host: the peers see `.reset`.
    func hostCrashed(_ host: HostID) {
        for id in streams.indices where !streams[id].dead {
            let s = streams[id]
            let side: Int
            if s.hosts.0 == host { side = 0 } else if s.hosts.1 == host && s.established { side = 1 } else { continue }
            streams[id].dead = true
            let peerClosed = side == 0 ? s.closed.1 : s.closed.0
            if s.established && !peerClosed {
                sendSegment(Segment(stream: id, kind: .rst, fromSide: side, payload: []))
            }
        }
    }

    private func sendSegment(_ segment: Segment) {
        var seg = segment
        if seg.sequence == 0 {
            segmentsSent += 1
            seg.sequence = segmentsSent
            if seg.kind != .rst {
                if seg.fromSide == 0 { streams[seg.stream].placed.0 += 1 } else { streams[seg.stream].placed.1 += 1 }
                seg.place = seg.fromSide == 0 ? streams[seg.stream].placed.0 : streams[seg.stream].placed.1
            }
        }
        let s = streams[seg.stream]
        let from = s.host(seg.fromSide), to = s.host(1 - seg.fromSide)
        let heldInDirection = seg.fromSide == 0 ? s.heldCount.0 : s.heldCount.1
        if heldInDirection > 0 || blocked[from * hostCount + to] || clogged[from] || clogged[to] {
            if seg.fromSide == 0 { streams[seg.stream].heldCount.0 += 1 } else { streams[seg.stream].heldCount.1 += 1 }
            log.record(now, from, .held, Int64(seg.stream), Int64(seg.kind.rawValue))
            held.append(.segment(seg))
            return
        }
        var delay = latency()
        if config.loss > 0 && random.chance(config.loss) {
            delay &+= config.retransmitDelay.nanoseconds
            simulation.coverage.hit("net.retransmit")
        }
        let last = seg.fromSide == 0 ? s.lastDelivery.0 : s.lastDelivery.1
        let at = max(now &+ delay, last &+ 1)
        if seg.fromSide == 0 { streams[seg.stream].lastDelivery.0 = at } else { streams[seg.stream].lastDelivery.1 = at }
        simulation.enqueue(at: at, .segment(seg))
    }

    func arrive(_ seg: Segment) {
        let id = seg.stream
        let s = streams[id]
        let toSide = 1 - seg.fromSide
        let to = s.host(toSide)
        let host = simulation.hosts[to]
        if holding[to] || clogged[to] {
            if seg.fromSide == 0 { streams[id].heldCount.0 += 1 } else { streams[id].heldCount.1 += 1 }
            log.record(now, to, .held, Int64(id), Int64(seg.kind.rawValue))
            // Segments of its direction sent after it may be held already (held when sent, while
            // this one was on its way): it goes back in front of them, so the stream keeps its order.
            let later = held.firstIndex {
                guard case .segment(let other) = $0 else { return false }
                return other.stream == id && other.fromSide == seg.fromSide && other.sequence > seg.sequence
            }
            held.insert(.segment(seg), at: later ?? held.endIndex)
            return
        }
        guard seg.kind != .rst else { return take(seg) }
        // A segment sent ahead of it in its direction is still on its way (held on arrival and
        // released, or retransmitted): it waits, as TCP's receiver would, and follows that one in.
        if seg.place != (seg.fromSide == 0 ? s.taken.0 : s.taken.1) + 1 {
            streams[id].early.append(seg)
            return
        }
        var next: Segment? = seg
        while let inOrder = next {
            if inOrder.fromSide == 0 { streams[id].taken.0 += 1 } else { streams[id].taken.1 += 1 }
            take(inOrder)
            let taken = inOrder.fromSide == 0 ? streams[id].taken.0 : streams[id].taken.1
            next = streams[id].early.firstIndex { $0.fromSide == inOrder.fromSide && $0.place == taken + 1 }
                .map { streams[id].early.remove(at: $0) }
        }
    }

    /// A segment the receiver takes (in its direction's order): what it means to the receiving host.
    private func take(_ seg: Segment) {
        let id = seg.stream
        let s = streams[id]
        let toSide = 1 - seg.fromSide
        let to = s.host(toSide)
        let host = simulation.hosts[to]
        switch seg.kind {
        case .syn:
            if s.dead { return }
            guard host.isUp, host.listening.contains(s.port) else {
                log.record(now, to, .refuse, Int64(id))
                simulation.coverage.hit("net.connect-refused")
                streams[id].dead = true
                sendSegment(Segment(stream: id, kind: .refuse, fromSide: 1, payload: []))
                return
            }
            streams[id].incarnations.1 = host.incarnation
            streams[id].established = true
            log.record(now, to, .accept, Int64(id), Int64(s.host(0)))
            sendSegment(Segment(stream: id, kind: .synAck, fromSide: 1, payload: []))
            host.deliver(.accepted(id, from: s.host(0), port: s.port))
        case .synAck:
            guard !s.dead, !s.closed.0, isCurrent(id, side: toSide) else { return }
            log.record(now, to, .established, Int64(id))
            host.deliver(.connected(id))
        case .refuse:
            guard !s.closed.0, isCurrent(id, side: toSide) else { return }
            host.deliver(.connectFailed(id, .connectRefused))
        case .data:
            guard isCurrent(id, side: toSide), !(toSide == 0 ? s.closed.0 : s.closed.1) else { return }
            log.record(now, to, .deliver, Int64(id), Int64(seg.payload.count), payload: seg.payload)
            host.deliver(.data(id, seg.payload))
        case .fin:
            guard isCurrent(id, side: toSide), !(toSide == 0 ? s.closed.0 : s.closed.1) else { return }
            log.record(now, to, .close, Int64(id), Int64(seg.fromSide))
            host.deliver(.closed(id))
        case .rst:
            guard isCurrent(id, side: toSide), !(toSide == 0 ? s.closed.0 : s.closed.1) else { return }
            log.record(now, to, .reset, Int64(id))
            simulation.coverage.hit("net.reset")
            host.deliver(.reset(id))
        }
    }

    /// Whether the host on `side` is still the incarnation that owns the stream.
    private func isCurrent(_ id: StreamID, side: Int) -> Bool {
        let s = streams[id]
        let host = simulation.hosts[s.host(side)]
        return host.isUp && host.incarnation == s.incarnation(side)
    }

    // MARK: Held messages

    private func releaseHeld() {
        guard !held.isEmpty else { return }
        let pending = held
        held.removeAll()
        // Streams re-enter in order; their held counters restart from zero.
        for case .segment(let seg) in pending {
            if seg.fromSide == 0 { streams[seg.stream].heldCount.0 = 0 } else { streams[seg.stream].heldCount.1 = 0 }
        }
        for event in pending {
            switch event {
            case .datagram(let d):
                let from = d.from, to = d.to
                if clogged[from] || clogged[to] || holding[to] {
                    held.append(event)
                } else {
                    log.record(now, to, .released, Int64(from), d.id)
                    transmit(d)
                }
            case .segment(let seg):
                sendSegment(seg)
            default:
                break
            }
        }
    }
}
