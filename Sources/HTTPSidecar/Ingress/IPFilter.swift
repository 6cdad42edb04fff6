import MeshCore

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, a bare address is /32 or /128).
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let address = parts.first, let bytes = CIDR.parse(address) else { return nil }
        let maxPrefix = bytes.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...maxPrefix).contains(p) else { return nil }
            prefix = p
        } else {
            prefix = maxPrefix
        }
        self.bytes = bytes
    }

    public var description: String { "\(CIDR.format(bytes))/\(prefix)" }

    /// Whether `address` (textual) lies in this network; addresses of the other family never do.
    public func contains(_ address: [UInt8]) -> Bool {
        guard address.count == bytes.count else { return false }
        var bits = prefix
        for i in bytes.indices where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
            if address[i] & mask != bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    /// Parses a textual IPv4 or IPv6 address into its bytes (IPv4-mapped IPv6 becomes IPv4).
    public static func parse(_ text: String) -> [UInt8]? {
        if !text.contains(":") {
            let octets = text.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4 else { return nil }
            var out: [UInt8] = []
            for o in octets {
                guard !o.isEmpty, o.count <= 3, o.allSatisfy(\.isASCII), let v = UInt8(o) else { return nil }
                out.append(v)
            }
            return out
        }
        var head: [UInt16] = [], tail: [UInt16] = []
        var sawGap = false
        let pieces = text.components(separatedBy: "::")
        guard pieces.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            var result: [UInt16] = []
            let fields = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            for (i, f) in fields.enumerated() {
                if i == fields.count - 1, f.contains(".") {
                    guard let four = parse(f) else { return nil }
                    result.append(UInt16(four[0]) << 8 | UInt16(four[1]))
                    result.append(UInt16(four[2]) << 8 | UInt16(four[3]))
                } else {
                    guard (1...4).contains(f.count), let g = UInt16(f, radix: 16) else { return nil }
                    result.append(g)
                }
            }
            return result
        }
        guard let h = groups(pieces[0]) else { return nil }
        head = h
        if pieces.count == 2 {
            sawGap = true
            guard let t = groups(pieces[1]) else { return nil }
            tail = t
        }
        let missing = 8 - head.count - tail.count
        guard sawGap ? missing >= 1 : missing == 0 else { return nil }
        let all = head + Array(repeating: 0, count: sawGap ? missing : 0) + tail
        if all[0..<5].allSatisfy({ $0 == 0 }) && all[5] == 0xffff {  // IPv4-mapped: compare as IPv4
            return [UInt8(all[6] >> 8), UInt8(all[6] & 0xff), UInt8(all[7] >> 8), UInt8(all[7] & 0xff)]
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }
}

/// Allow and deny lists by CIDR. Deny wins; with a non-empty allow list, only listed clients pass.
public struct IPFilter: Hashable, Sendable {
    public var allow: [CIDR]
    public var deny: [CIDR]

    public init(allow: [CIDR] = [], deny: [CIDR] = []) {
        self.allow = allow
        self.deny = deny
    }

    /// Whether a client at `address` may pass; an unparseable address never does.
    public func permits(_ address: String) -> Bool {
        guard let bytes = CIDR.parse(address) else { return false }
        if deny.contains(where: { $0.contains(bytes) }) { return false }
        return allow.isEmpty || allow.contains { $0.contains(bytes) }
    }
}

import Foundation
