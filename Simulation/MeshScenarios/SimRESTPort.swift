import KafkaSidecar
import MeshSimulator

/// The HTTP/1.1 side of a simulated sidecar's REST port, as production's REST server behaves: each
/// request read with the product's framing scanner, answers written in request order on their
/// connection (a slot per request, filled when its answer is decided, flushed from the front), a 204
/// without body fields. The pod decides the answers; this only frames them.
struct SimRESTPort {
    private var open: [StreamID: SimHTTP1.RequestReader] = [:]
    private var owed: [StreamID: [(id: UInt64, answer: [UInt8]?)]] = [:]
    private var nextSlot: UInt64 = 1

    /// Takes one network event and returns the whole requests it completed, each with its slot (the
    /// pod answers them after this returns). A request the scanner cannot read is a violation of
    /// `invariant` and closes the connection.
    mutating func receive(_ event: NetEvent, on host: SimHost, invariant: String) -> [(reader: SimHTTP1.RequestReader, stream: StreamID, slot: UInt64)] {
        var out: [(reader: SimHTTP1.RequestReader, stream: StreamID, slot: UInt64)] = []
        switch event {
        case .accepted(let s, _, _):
            open[s] = SimHTTP1.RequestReader()
            owed[s] = []
        case .closed(let s), .reset(let s):
            open[s] = nil
            owed[s] = nil
            host.close(s)
        case .data(let s, let bytes):
            let (requests, invalid) = SimHTTP1.serve(bytes, on: s, &open)
            for reader in requests {
                let slot = nextSlot
                nextSlot += 1
                owed[s, default: []].append((slot, nil))
                out.append((reader, s, slot))
            }
            if let v = invalid {
                host.simulation.violation(invariant, "the sidecar could not read a request: \(v)", host: host.id)
                host.close(s)
            }
        default:
            break
        }
        return out
    }

    /// Writes answer `slot` on `s` once every answer before it is written (`log` names the event-log line).
    mutating func answer(_ s: StreamID, _ slot: UInt64, _ a: RESTAnswer, on host: SimHost, log: StaticString) {
        guard var queue = owed[s], let i = queue.firstIndex(where: { $0.id == slot }) else { return }
        host.log(log, Int64(slot), Int64(a.status), a.status >= 300 ? String(decoding: a.body.prefix(160), as: UTF8.self) : "")
        queue[i].answer = Self.bytes(a)
        while let first = queue.first, let bytes = first.answer {
            host.write(s, bytes)
            queue.removeFirst()
        }
        owed[s] = queue
    }

    /// The answer as production's REST server writes it: a 204 without body fields.
    static func bytes(_ a: RESTAnswer) -> [UInt8] {
        var text = "HTTP/1.1 \(a.status) \(a.status < 400 ? "OK" : "Error")\r\n"
        if a.status != 204 { text += "content-type: \(a.contentType)\r\ncontent-length: \(a.body.count)\r\n" }
        return Array((text + "\r\n").utf8) + (a.status == 204 ? [] : a.body)
    }
}
