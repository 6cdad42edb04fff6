import MeshCore
import MeshSimulator
import Testing

@Suite struct NetworkTests {
    @Test func datagramsArriveAfterLatencyAndNotAtDownHosts() {
        let sim = Simulation(seed: 1, network: quietNetwork())
        let (a, _) = recorderHost(sim, "a")
        let (b, rb) = recorderHost(sim, "b")
        a.boot(); b.boot()
        a.send(to: b.id, port: 1, [1])
        sim.run(until: .zero + .microseconds(999))
        #expect(rb()!.events.isEmpty)
        sim.run(until: .zero + .milliseconds(2))
        #expect(rb()!.events == ["dgram 0 [1]"])
        b.crash()
        a.send(to: b.id, port: 1, [2])
        sim.schedule(after: .milliseconds(5)) { b.restart() }  // after the datagram reached the dead host
        sim.run(until: .zero + .milliseconds(10))
        #expect(rb()!.events.isEmpty, "a datagram that reached a down host was kept for its next incarnation")
        #expect(sim.coverage.count("net.drop.host-down") == 1)
    }

    @Test func lossDuplicationAndCapacity() {
        var config = quietNetwork()
        config.loss = 1
        let lossy = Simulation(seed: 1, network: config)
        let (a, _) = recorderHost(lossy, "a"); let (b, rb) = recorderHost(lossy, "b")
        a.boot(); b.boot()
        for i in 0..<10 { a.send(to: b.id, port: 1, [UInt8(i)]) }
        lossy.run(until: .zero + .seconds(1))
        #expect(rb()!.events.isEmpty)

        config.loss = 0
        config.duplicate = 1
        let dup = Simulation(seed: 1, network: config)
        let (c, _) = recorderHost(dup, "c"); let (d, rd) = recorderHost(dup, "d")
        c.boot(); d.boot()
        c.send(to: d.id, port: 1, [7])
        dup.run(until: .zero + .seconds(1))
        #expect(rd()!.events == ["dgram 0 [7]", "dgram 0 [7]"])

        config.duplicate = 0
        config.capacity = 3
        let small = Simulation(seed: 1, network: config)
        let (e, _) = recorderHost(small, "e"); let (f, rf) = recorderHost(small, "f")
        e.boot(); f.boot()
        for i in 0..<10 { e.send(to: f.id, port: 1, [UInt8(i)]) }
        small.run(until: .zero + .seconds(1))
        #expect(rf()!.events.count == 3)
        #expect(small.coverage.count("net.drop.capacity") == 7)
    }

    @Test func partitionsCutOneOrBothWaysAndHeal() {
        let sim = Simulation(seed: 1, network: quietNetwork())
        let (a, ra) = recorderHost(sim, "a"); let (b, rb) = recorderHost(sim, "b")
        a.boot(); b.boot()
        sim.network.partition(a.id, b.id, oneWay: true)
        a.send(to: b.id, port: 1, [1])
        b.send(to: a.id, port: 1, [2])
        sim.run(until: .zero + .milliseconds(5))
        #expect(rb()!.events.isEmpty)
        #expect(ra()!.events == ["dgram 1 [2]"])
        sim.network.healAll()
        a.send(to: b.id, port: 1, [3])
        sim.run(until: .zero + .milliseconds(10))
        #expect(rb()!.events == ["dgram 0 [3]"])
    }

    @Test func clogAndHoldDelayUntilReleased() {
        let sim = Simulation(seed: 1, network: quietNetwork())
        let (a, _) = recorderHost(sim, "a"); let (b, rb) = recorderHost(sim, "b")
        a.boot(); b.boot()
        sim.network.clog(b.id)
        a.send(to: b.id, port: 1, [1])
        sim.run(until: .zero + .milliseconds(100))
        #expect(rb()!.events.isEmpty)
        sim.network.unclog(b.id)
        sim.run(until: .zero + .milliseconds(102))
        #expect(rb()!.events == ["dgram 0 [1]"])

        a.send(to: b.id, port: 1, [2])  // already in flight when the hold starts
        sim.network.hold(b.id)
        sim.run(until: .zero + .milliseconds(200))
        #expect(rb()!.events.count == 1)
        sim.network.release(b.id)
        sim.run(until: .zero + .milliseconds(202))
        #expect(rb()!.events.last == "dgram 0 [2]")
    }

    @Test func connectingToAHostThatIsDownOrNotListeningIsRefused() {
        let sim = Simulation(seed: 1, network: quietNetwork())
        let (a, ra) = recorderHost(sim, "a")
        let (b, _) = recorderHost(sim, "b")  // not listening
        let (c, _) = recorderHost(sim, "c", listen: 80)
        a.boot(); b.boot(); c.boot()
        c.crash()
        let s1 = a.connect(to: b.id, port: 80)
        let s2 = a.connect(to: c.id, port: 80)
        sim.run(until: .zero + .milliseconds(10))
        #expect(ra()!.events == ["failed \(s1) connect_refused", "failed \(s2) connect_refused"])
    }

    @Test func streamsKeepOrderAndResetPeersOfACrashedHost() {
        var config = quietNetwork()
        config.latencyTailMean = .milliseconds(5)  // random latencies must not reorder a stream
        config.reorder = 0.5
        let sim = Simulation(seed: 3, network: config)
        let (a, ra) = recorderHost(sim, "a")
        let (b, rb) = recorderHost(sim, "b", listen: 80)
        a.boot(); b.boot()
        let s = a.connect(to: b.id, port: 80)
        ra()!.onEvent = { event, host in
            if case .connected = event { for i in 0..<20 { host.write(s, [UInt8(i)]) } }
        }
        sim.run(until: .zero + .seconds(1))
        #expect(rb()!.events.first == "accepted \(s) from 0")
        #expect(rb()!.events.dropFirst().map { $0 } == (0..<20).map { "data \(s) [\($0)]" })
        b.crash()
        sim.run(until: .zero + .seconds(2))
        #expect(ra()!.events.last == "reset \(s)")
    }

    @Test func partitionHoldsStreamSegmentsUntilHealed() {
        let sim = Simulation(seed: 1, network: quietNetwork())
        let (a, ra) = recorderHost(sim, "a")
        let (b, rb) = recorderHost(sim, "b", listen: 80)
        a.boot(); b.boot()
        let s = a.connect(to: b.id, port: 80)
        sim.run(until: .zero + .milliseconds(5))
        #expect(ra()!.events == ["connected \(s)"])
        sim.network.partition(a.id, b.id)
        a.write(s, [1]); a.write(s, [2])
        sim.run(until: .zero + .seconds(1))
        #expect(rb()!.events == ["accepted \(s) from 0"])
        sim.network.healAll()
        sim.run(until: .zero + .seconds(2))
        #expect(rb()!.events == ["accepted \(s) from 0", "data \(s) [1]", "data \(s) [2]"])
    }

    /// An abortive close (`SO_LINGER` 0) drops what a partition still holds: after the heal the peer
    /// sees the reset, never the bytes written before it; a graceful close would have delivered them.
    @Test func anAbortDropsHeldBytesAndResetsThePeer() {
        let (sim, a, b, s, rb) = connectedStream()
        sim.network.partition(a.id, b.id)
        a.write(s, [1]); a.write(s, [2])
        a.abort(s)
        sim.run(until: .zero + .seconds(1))
        sim.network.healAll()
        sim.run(until: .zero + .seconds(2))
        #expect(rb()!.events == ["accepted \(s) from 0", "reset \(s)"])
        _ = b
    }
}


extension NetworkTests {
    /// A stream from host `a` to host `b`, connected, with what `b` has received.
    private func connectedStream() -> (Simulation, SimHost, SimHost, StreamID, () -> Recorder?) {
        let sim = Simulation(seed: 1, network: quietNetwork())
        let (a, ra) = recorderHost(sim, "a")
        let (b, rb) = recorderHost(sim, "b", listen: 80)
        a.boot(); b.boot()
        let s = a.connect(to: b.id, port: 80)
        sim.run(until: .zero + .milliseconds(5))
        #expect(ra()!.events == ["connected \(s)"])
        return (sim, a, b, s, rb)
    }

    /// A segment already on its way when the receiver is clogged is held on arrival; one sent after
    /// it, while the clog lasts, is held at sending. Released, they arrive in the order they were
    /// sent (held in arrival order, the later one came first and the receiver read a stream cut).
    @Test func segmentsHeldOnArrivalStayAheadOfLaterOnes() {
        let (sim, a, b, s, rb) = connectedStream()
        a.write(s, [1])  // on its way (1 ms of latency)
        sim.network.clog(b.id)
        a.write(s, [2])  // held when sent
        sim.run(until: .zero + .milliseconds(50))  // [1] arrives and is held
        #expect(rb()!.events == ["accepted \(s) from 0"])
        sim.network.unclog(b.id)
        sim.run(until: .zero + .seconds(1))
        #expect(rb()!.events == ["accepted \(s) from 0", "data \(s) [1]", "data \(s) [2]"])
    }

    /// A segment held on arrival and sent again on unclog is due after a later one still in flight
    /// (slowed here, by loss or a latency spike in a swarm): the receiver waits for it, as TCP does,
    /// instead of taking the later one first.
    @Test func aSegmentOvertakingOneHeldOnArrivalWaitsForIt() {
        let (sim, a, b, s, rb) = connectedStream()
        a.write(s, [1])  // on its way (1 ms of latency)
        sim.network.latencyFactor = 100
        a.write(s, [2])  // slow: due after 100 ms
        sim.network.latencyFactor = 1
        sim.network.clog(b.id)
        sim.run(until: .zero + .milliseconds(10))  // [1] arrives and is held
        sim.network.unclog(b.id)  // [1] goes again, due after [2]
        sim.run(until: .zero + .seconds(1))
        #expect(rb()!.events == ["accepted \(s) from 0", "data \(s) [1]", "data \(s) [2]"])
    }
}

/// The rolling hash sees what travels and what the kernel runs, not just that something happened.
@Suite struct LogHashTests {
    private func hash(payload: [UInt8], closureLabel: Bool = false) -> UInt64 {
        let sim = Simulation(seed: 1, network: quietNetwork())
        let (a, _) = recorderHost(sim, "a")
        let (b, _) = recorderHost(sim, "b")
        a.boot(); b.boot()
        a.send(to: b.id, port: 1, payload)
        if closureLabel { sim.schedule(after: .milliseconds(1), label: "one") {} } else { sim.schedule(after: .milliseconds(1), label: "two") {} }
        sim.run(until: .zero + .milliseconds(5))
        return sim.log.hash
    }

    @Test func payloadsAndClosureLabelsChangeTheHash() {
        #expect(hash(payload: [1, 2, 3]) == hash(payload: [1, 2, 3]))
        #expect(hash(payload: [1, 2, 3]) != hash(payload: [1, 2, 4]), "same size, other bytes")
        #expect(hash(payload: [1], closureLabel: true) != hash(payload: [1], closureLabel: false))
    }
}
