import HTTPClientNIO
import HTTPSidecarEngines
import Foundation
import Logging
import MeshCore
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// One discovery result: the endpoints and where to connect for each.
struct DiscoveredEndpoints: Sendable {
    var endpoints: [(address: MeshAddress, socket: SocketAddress)]
}

/// Why discovery produced nothing usable this round (the previous endpoints stay in use).
struct DiscoveryError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

enum DiscoveryResolver {
    /// Resolves `discovery` once (blocking: run it off the event loops).
    static func resolve(_ discovery: Discovery) throws -> DiscoveredEndpoints {
        switch discovery {
        case .fixed(let endpoints):
            return DiscoveredEndpoints(endpoints: try endpoints.map { ($0, try socket($0)) })
        case .dns(let name, let port, _):
            let addresses = try lookup(name, port: port)
            guard !addresses.isEmpty else { throw DiscoveryError(message: "\(name) resolved to no address") }
            return DiscoveredEndpoints(endpoints: addresses.map { (MeshAddress(host: $0.ipAddress ?? name, port: port), $0) })
        case .file(let path, _):
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DiscoveryError(message: "cannot read \(path)") }
            let endpoints = try parseEndpointFile(text, source: path)
            return DiscoveredEndpoints(endpoints: try endpoints.map { ($0, try socket($0)) })
        }
    }

    /// `HOST:PORT` per line; blank lines and `#` comments ignored; any other line is an error naming it.
    static func parseEndpointFile(_ text: String, source: String) throws -> [MeshAddress] {
        var out: [MeshAddress] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if line.isEmpty { continue }
            guard let address = MeshAddress(parsing: line) else {
                throw DiscoveryError(message: "\(source):\(n + 1): expected HOST:PORT, got '\(line)'")
            }
            out.append(address)
        }
        return out
    }

    static func socket(_ address: MeshAddress) throws -> SocketAddress {
        do {
            return try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        } catch {
            throw DiscoveryError(message: "cannot resolve \(address): \(error)")
        }
    }

    /// Every IPv4 and IPv6 address of `name` (getaddrinfo), deduplicated, in a stable order.
    static func lookup(_ name: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, String(port), &hints, &result)
        guard rc == 0 else { throw DiscoveryError(message: "cannot resolve \(name): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(result) }
        var seen = Set<String>()
        var out: [SocketAddress] = []
        var cursor = result
        while let info = cursor {
            if let sa = info.pointee.ai_addr {
                let address: SocketAddress?
                switch Int32(info.pointee.ai_family) {
                case AF_INET: address = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: name) }
                case AF_INET6: address = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: name) }
                default: address = nil
                }
                if let address, let ip = address.ipAddress, seen.insert(ip).inserted { out.append(address) }
            }
            cursor = info.pointee.ai_next
        }
        return out.sorted { ($0.ipAddress ?? "") < ($1.ipAddress ?? "") }
    }
}

/// Re-runs discovery for one service on an interval and hands each changed result to `update`.
/// A failed round (DNS error, unreadable or malformed file) keeps the previous endpoints and is logged.
final class DiscoveryWatcher: Sendable {
    private let task: Task<Void, Never>

    /// Nil for a fixed list: there is nothing to watch.
    init?(service: String, discovery: Discovery, logger: Logger, update: @escaping @Sendable (DiscoveredEndpoints) -> Void) {
        let every: Duration
        switch discovery {
        case .fixed: return nil
        case .dns(_, _, let e), .file(_, let e): every = e
        }
        task = Task.detached {
            var last: [MeshAddress]?
            var lastError: String?
            while !Task.isCancelled {
                try? await Task.sleep(for: every)
                if Task.isCancelled { return }
                do {
                    let found = try DiscoveryResolver.resolve(discovery)
                    let addresses = found.endpoints.map(\.address)
                    lastError = nil
                    if addresses != last {
                        if last != nil { logger.notice("discovery \(service): \(addresses.map(\.description).joined(separator: ", "))") }
                        last = addresses
                        update(found)
                    }
                } catch {
                    if "\(error)" != lastError { logger.warning("discovery \(service): \(error); keeping the previous endpoints") }
                    lastError = "\(error)"
                }
            }
        }
    }

    func stop() { task.cancel() }
}

extension MeshAddress {
    /// Parses `HOST:PORT` (`[v6]:PORT` too).
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !host.isEmpty, !host.contains(" ") else { return nil }
        self.init(host: host, port: port)
    }
}
