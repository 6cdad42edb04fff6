import Foundation
import KafkaRdKafka
import MeshCore
import Synchronization

/// Single records at a fixed rate, for ci/bench-kafka-sidecar's added-latency measurement: each
/// record's latency runs from the instant it was due (not when it was sent, so a stall is counted
/// against every record it delays) to its acknowledgement.
enum LatencyBench {
    /// Directly through the adapter, with the sidecar's producer settings (idempotent, acks=all, linger 1 ms).
    static func direct(_ settings: RdKafkaClusterSettings, topic: String, count: Int, rate: Int) throws -> [Double] {
        var config = KafkaProducerConfig()
        config.lingerMilliseconds = 1
        let producer = try RdKafkaProducer(settings, config: config)
        let latencies = Mutex<[Double]>([])
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
        let start = ContinuousClock.now
        for i in 0..<count {
            let due = start + .nanoseconds(Int64(i) * 1_000_000_000 / Int64(rate))
            if ContinuousClock.now < due { Thread.sleep(forTimeInterval: seconds(due - ContinuousClock.now)) }
            producer.send(ProducerRecord(topic: topic, value: value)) { _ in
                let ms = seconds(ContinuousClock.now - due) * 1000
                latencies.withLock { $0.append(ms) }
            }
        }
        while latencies.withLock({ $0.count }) < count { usleep(500) }
        producer.close()
        return latencies.withLock { $0 }
    }

    /// Through the sidecar's REST port: `connections` keep-alive connections (an app at a fixed rate
    /// has several requests open when one answer takes longer than the gap between two), record `i`
    /// on connection `i % connections`, one record per request (the Confluent binary shape), each
    /// answer read whole before that connection's next request.
    static func rest(host: String, port: Int, topic: String, count: Int, rate: Int, connections: Int = 8) throws -> [Double] {
        let body = #"{"records":[{"value":"\#(Data(repeating: UInt8(ascii: "x"), count: 100).base64EncodedString())"}]}"#
        let request = Array("POST /topics/\(topic) HTTP/1.1\r\nhost: \(host)\r\ncontent-type: application/vnd.kafka.binary.v2+json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
        let latencies = Mutex<[Double]>([])
        let failure = Mutex<String?>(nil)
        let start = ContinuousClock.now + .milliseconds(100)
        let threads = (0..<connections).map { t in
            Thread {
                do {
                    let fd = try connectTo(host, port)
                    defer { close(fd) }
                    var buffer = [UInt8](repeating: 0, count: 65_536)
                    for i in stride(from: t, to: count, by: connections) {
                        let due = start + .nanoseconds(Int64(i) * 1_000_000_000 / Int64(rate))
                        if ContinuousClock.now < due { Thread.sleep(forTimeInterval: seconds(due - ContinuousClock.now)) }
                        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                        var got: [UInt8] = []
                        while true {
                            let n = read(fd, &buffer, buffer.count)
                            guard n > 0 else { throw NSError(domain: "read", code: Int(errno)) }
                            got += buffer[0..<n]
                            if let end = headEnd(got), got.count >= end + contentLength(got[0..<end]) { break }
                        }
                        guard got.starts(with: Array("HTTP/1.1 200".utf8)) else { throw NSError(domain: String(decoding: got.prefix(200), as: UTF8.self), code: 0) }
                        let ms = seconds(ContinuousClock.now - due) * 1000
                        latencies.withLock { $0.append(ms) }
                    }
                } catch {
                    failure.withLock { $0 = "\(error)" }
                }
            }
        }
        for t in threads { t.start() }
        while latencies.withLock({ $0.count }) < count && failure.withLock({ $0 }) == nil { usleep(1_000) }
        if let f = failure.withLock({ $0 }) { throw NSError(domain: f, code: 1) }
        return latencies.withLock { $0 }
    }

    private static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    private static func connectTo(_ host: String, _ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw NSError(domain: "connect", code: Int(errno)) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    private static func headEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i + 4 }
        return nil
    }

    private static func contentLength(_ head: ArraySlice<UInt8>) -> Int {
        let text = String(decoding: head, as: UTF8.self).lowercased()
        guard let r = text.range(of: "content-length:") else { return 0 }
        return Int(text[r.upperBound...].prefix { $0 != "\r" }.trimmingCharacters(in: .whitespaces)) ?? 0
    }

    /// `p50 p99 max` in milliseconds.
    static func summary(_ latencies: [Double]) -> String {
        let s = latencies.sorted()
        func p(_ q: Double) -> Double { s[min(s.count - 1, Int(Double(s.count) * q))] }
        return String(format: "p50=%.3f p99=%.3f max=%.3f", p(0.5), p(0.99), s.last ?? 0)
    }
}
