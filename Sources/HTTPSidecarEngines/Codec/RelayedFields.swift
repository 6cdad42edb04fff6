import HTTPSidecar
import NIOCore

/// The field lines of a scanned head while a relay edits them, written out as bytes: a field that
/// comes through unchanged is copied as the line the peer sent (the scanner checked it), so relaying
/// a header line allocates nothing; only fields the relay sets or renames are strings.
///
/// The edits mean what the same calls on NIO's `HTTPHeaders` mean (names compare without case;
/// ``replaceOrAdd(_:_:)`` removes every field of the name and appends one), so the request a relay
/// builds here is the one it built before as `HTTPHeaders` (a test compares them).
///
/// Valid only while the scanned bytes it reads are (build, edit and write it in one
/// `withUnsafeReadableBytes` scope).
struct RelayedFields {
    /// One field line.
    enum Entry {
        /// A line of the scanned head, name and value as the peer sent them.
        case scanned(name: Range<Int>, value: Range<Int>, line: Range<Int>)
        /// A scanned value under another name (a configured rename).
        case renamed(name: String, value: Range<Int>)
        /// A field the relay set.
        case set(name: String, value: String)
    }

    private var entries: [Entry]
    private let bytes: UnsafeRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer, fields: [HTTP1Field], room: Int = 8) {
        self.bytes = bytes
        entries = []
        entries.reserveCapacity(fields.count + room)
        for field in fields { entries.append(.scanned(name: field.name, value: field.value, line: field.line)) }
    }

    // MARK: Reading

    /// Whether entry `i`'s name is `name`, without case.
    func hasName(_ i: Int, _ name: String) -> Bool { hasName(entries[i], name) }

    private func hasName(_ entry: Entry, _ name: String) -> Bool {
        switch entry {
        case .scanned(let n, _, _): return Self.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: bytes[n]), name.utf8)
        case .renamed(let n, _), .set(let n, _): return Self.equalsIgnoringCase(n.utf8, name.utf8)
        }
    }

    /// Entry `i`'s value.
    func value(_ i: Int) -> String {
        switch entries[i] {
        case .scanned(_, let v, _), .renamed(_, let v): return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[v]), as: UTF8.self)
        case .set(_, let v): return v
        }
    }

    /// The first value of `name`, or nil.
    func first(_ name: String) -> String? {
        for i in entries.indices where hasName(i, name) { return value(i) }
        return nil
    }

    /// Every value of `name`, in order.
    func all(_ name: String) -> [String] {
        entries.indices.filter { hasName($0, name) }.map(value)
    }

    func contains(_ name: String) -> Bool { entries.indices.contains { hasName($0, name) } }

    // MARK: Editing

    mutating func remove(_ name: String) {
        // In place: the entries kept move down, nothing is allocated.
        var kept = 0
        for i in entries.indices where !hasName(entries[i], name) {
            if kept != i { entries[kept] = entries[i] }
            kept += 1
        }
        entries.removeLast(entries.count - kept)
    }

    mutating func add(_ name: String, _ value: String) { entries.append(.set(name: name, value: value)) }

    /// Removes every field whose name contains `_` (as nginx and Envoy do by default).
    mutating func removeNamesWithUnderscore() {
        var kept = 0
        for i in entries.indices {
            let underscore: Bool
            switch entries[i] {
            case .scanned(let n, _, _): underscore = bytes[n].contains(UInt8(ascii: "_"))
            case .renamed(let n, _), .set(let n, _): underscore = n.utf8.contains(UInt8(ascii: "_"))
            }
            if underscore { continue }
            if kept != i { entries[kept] = entries[i] }
            kept += 1
        }
        entries.removeLast(entries.count - kept)
    }

    mutating func replaceOrAdd(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    /// Removes hop-by-hop fields, and every field `Connection` names except `Content-Length` and
    /// `Host` (as ``ProxyHeaders`` does for `HTTPHeaders`).
    mutating func removeHopByHop() {
        var named: Set<String> = []
        var any = false
        for i in entries.indices where isHopByHop(i) {
            any = true
            guard hasName(i, "connection") else { continue }
            ProxyHeaders.forEachToken(value(i)) { token in
                if token.isEmpty || ProxyHeaders.isHopByHop(token) { return }
                let lower = String(decoding: token, as: UTF8.self).lowercased()
                if !ProxyHeaders.protectedFromConnection.contains(lower) { named.insert(lower) }
            }
        }
        guard any else { return }
        var kept = 0
        for i in entries.indices where !isHopByHop(i) && (named.isEmpty || !named.contains(lowercasedName(i))) {
            if kept != i { entries[kept] = entries[i] }
            kept += 1
        }
        entries.removeLast(entries.count - kept)
    }

    /// Applies configured rules: remove, then rename, then set (see ``HeaderRules``).
    mutating func apply(_ rules: HeaderRules) {
        guard !rules.isEmpty else { return }
        for name in rules.remove { remove(name) }
        if !rules.rename.isEmpty {
            for i in entries.indices {
                for (from, to) in rules.rename where hasName(i, from) {
                    switch entries[i] {
                    case .scanned(_, let v, _), .renamed(_, let v): entries[i] = .renamed(name: to, value: v)
                    case .set(_, let v): entries[i] = .set(name: to, value: v)
                    }
                    break
                }
            }
        }
        for (name, value) in rules.add.sorted(by: { $0.key < $1.key }) { replaceOrAdd(name, value) }
    }

    // MARK: Writing

    /// Writes the field lines (not the empty line after them).
    func write(into out: inout ByteBuffer) {
        for entry in entries {
            switch entry {
            case .scanned(_, _, let line):
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[line]))
            case .renamed(let name, let value):
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[value]))
                out.writeStaticString("\r\n")
            case .set(let name, let value):
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeString(value)
                out.writeStaticString("\r\n")
            }
        }
    }

    /// A request head of these fields: the request line (HTTP/1.1), the field lines and the empty
    /// line, in one buffer sized to fit.
    func requestHead(method: HTTP1Method, target: String, chunked: Bool) -> EncodedRequestHead {
        let name = method.name
        var out = ByteBufferAllocator().buffer(capacity: name.utf8CodeUnitCount + 1 + target.utf8.count + 11 + writtenLength + 2)
        out.writeStaticString(name)
        out.writeStaticString(" ")
        out.writeString(target)
        out.writeStaticString(" HTTP/1.1\r\n")
        write(into: &out)
        out.writeStaticString("\r\n")
        return EncodedRequestHead(bytes: out, method: method, chunked: chunked)
    }

    /// The bytes ``write(into:)`` writes.
    var writtenLength: Int {
        entries.reduce(0) { sum, entry in
            switch entry {
            case .scanned(_, _, let line): sum + line.count
            case .renamed(let name, let value): sum + name.utf8.count + value.count + 4
            case .set(let name, let value): sum + name.utf8.count + value.utf8.count + 4
            }
        }
    }

    // MARK: Helpers

    private func isHopByHop(_ i: Int) -> Bool {
        switch entries[i] {
        case .scanned(let n, _, _): ProxyHeaders.isHopByHop(UnsafeRawBufferPointer(rebasing: bytes[n]))
        case .renamed(let n, _), .set(let n, _): ProxyHeaders.isHopByHop(n)
        }
    }

    private func lowercasedName(_ i: Int) -> String {
        switch entries[i] {
        case .scanned(let n, _, _): String(decoding: UnsafeRawBufferPointer(rebasing: bytes[n]), as: UTF8.self).lowercased()
        case .renamed(let n, _), .set(let n, _): n.lowercased()
        }
    }

    @inline(__always)
    static func equalsIgnoringCase(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var j = b.startIndex
        for x in a {
            let y = b[j]
            if x != y {
                let fx = x >= 0x41 && x <= 0x5A ? x | 0x20 : x
                let fy = y >= 0x41 && y <= 0x5A ? y | 0x20 : y
                if fx != fy { return false }
            }
            j = b.index(after: j)
        }
        return true
    }
}
