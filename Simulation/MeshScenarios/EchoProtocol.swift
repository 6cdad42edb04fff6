/// The proof workload's wire format: a request carries an attempt id and a key; the response carries
/// the same id and echoes the key. Small and binary, like a real RPC frame.
enum EchoMessage: Equatable {
    case request(wire: UInt64, key: String)
    case response(wire: UInt64, body: String)

    static let port = 7

    func encode() -> [UInt8] {
        var bytes: [UInt8]
        let wire: UInt64, text: String
        switch self {
        case .request(let w, let k): bytes = [1]; wire = w; text = k
        case .response(let w, let b): bytes = [2]; wire = w; text = b
        }
        bytes.reserveCapacity(9 + text.utf8.count)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: wire >> (8 * UInt64(i)))) }
        bytes.append(contentsOf: text.utf8)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> EchoMessage? {
        guard bytes.count >= 9 else { return nil }
        var wire: UInt64 = 0
        for i in 0..<8 { wire |= UInt64(bytes[1 + i]) << (8 * UInt64(i)) }
        let text = String(decoding: bytes[9...], as: UTF8.self)
        switch bytes[0] {
        case 1: return .request(wire: wire, key: text)
        case 2: return .response(wire: wire, body: text)
        default: return nil
        }
    }
}
