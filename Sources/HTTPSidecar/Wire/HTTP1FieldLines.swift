/// Reads the field lines of a head (or a trailer section) whose line endings the finder has already
/// checked, into `HTTP1Field`s. Shared by requests and responses; what a field means is decided by
/// the caller.
enum HTTP1FieldLines {
    /// The fields between `from` and the empty line at `end - 2`, appended to `fields`.
    static func read(_ bytes: UnsafeRawBufferPointer, from: Int, end: Int, limits: HTTP1Limits, into fields: inout [HTTP1Field]) -> HTTP1Violation? {
        var p = from
        let last = end - 2  // the empty line's CR
        while p < last {
            if HTTP1Byte.isWhitespace(bytes[p]) { return .obsoleteLineFolding }
            let lineStart = p
            while p < last, HTTP1Byte.isToken(bytes[p]) { p += 1 }
            guard p > lineStart, p < last, bytes[p] == HTTP1Byte.colon else {
                return p < last && isControl(bytes[p]) ? .controlByte : .badFieldLine
            }
            let name = lineStart..<p
            p += 1
            while HTTP1Byte.isWhitespace(bytes[p]) { p += 1 }
            let valueStart = p
            var valueEnd = p
            while bytes[p] != HTTP1Byte.cr {
                let b = bytes[p]
                guard HTTP1Byte.isFieldValue(b) else { return isControl(b) ? .controlByte : .badFieldLine }
                p += 1
                if !HTTP1Byte.isWhitespace(b) { valueEnd = p }
            }
            p += 2  // CRLF, checked by the finder
            guard fields.count < limits.maxFields else { return .tooManyFields }
            fields.append(HTTP1Field(name: name, value: valueStart..<valueEnd, kind: .endToEnd, line: lineStart..<p))
        }
        return nil
    }

    @inline(__always) static func isControl(_ b: UInt8) -> Bool { b < 0x20 || b == 0x7F }

    /// Reads the field lines of a head and checks the framing they declare, the same way for
    /// requests and answers: never both `Content-Length` and `Transfer-Encoding`, and no transfer
    /// coding in an HTTP/1.0 message.
    static func readAndClassify(_ bytes: UnsafeRawBufferPointer, from: Int, end: Int, version: HTTP1Version, limits: HTTP1Limits,
                                into fields: inout [HTTP1Field]) -> Result<Classified, HTTP1Violation> {
        if let v = read(bytes, from: from, end: end, limits: limits, into: &fields) { return .failure(v) }
        let c: Classified
        switch classify(bytes, &fields) {
        case .failure(let v): return .failure(v)
        case .success(let classified): c = classified
        }
        if c.chunked {
            // ci/mutants: answer-length-and-chunked, scanner-length-and-chunked (the next line)
            guard c.contentLength == nil else { return .failure(.lengthAndTransferEncoding) }
            guard version == .http11 else { return .failure(.badTransferEncoding) }
        }
        return .success(c)
    }

    /// Classifies framing and hop-by-hop fields, checks `Content-Length`, `Transfer-Encoding`, `Host`
    /// and what `Connection` names. Returns the pieces a head needs.
    static func classify(_ bytes: UnsafeRawBufferPointer, _ fields: inout [HTTP1Field]) -> Result<Classified, HTTP1Violation> {
        var out = Classified()
        var connectionFields = 0
        for i in fields.indices {
            let name = fields[i].name
            let value = fields[i].value
            switch name.count {
            // Framing fields: the value exactly, with no whitespace after it (parsers disagree on
            // which trailing whitespace to ignore).
            case 14 where HTTP1Byte.equalsIgnoringCase(bytes, name, "content-length"):
                // ci/mutants: scanner-duplicate-length, scanner-length-whitespace (the next line)
                guard out.contentLength == nil, value.upperBound == fields[i].line.upperBound - 2, let n = digits(bytes, value) else {
                    return .failure(.badContentLength)
                }
                out.contentLength = n
                fields[i].kind = .framing
            case 17 where HTTP1Byte.equalsIgnoringCase(bytes, name, "transfer-encoding"):
                guard !out.chunked, value.upperBound == fields[i].line.upperBound - 2, HTTP1Byte.equalsIgnoringCase(bytes, value, "chunked") else {
                    return .failure(.badTransferEncoding)
                }
                out.chunked = true
                fields[i].kind = .framing
            case 4 where HTTP1Byte.equalsIgnoringCase(bytes, name, "host"):
                guard out.host == nil, isHost(bytes, value) else { return .failure(.badHost) }
                out.host = value
                fields[i].kind = .host
            case 10 where HTTP1Byte.equalsIgnoringCase(bytes, name, "connection"):
                fields[i].kind = .hopByHop
                connectionFields += 1
            case 10 where HTTP1Byte.equalsIgnoringCase(bytes, name, "keep-alive"),
                 2 where HTTP1Byte.equalsIgnoringCase(bytes, name, "te"),
                 7 where HTTP1Byte.equalsIgnoringCase(bytes, name, "trailer"),
                 16 where HTTP1Byte.equalsIgnoringCase(bytes, name, "proxy-connection"):
                fields[i].kind = .hopByHop
            case 7 where HTTP1Byte.equalsIgnoringCase(bytes, name, "upgrade"):
                fields[i].kind = .hopByHop
                out.upgrade = true
            case 6 where HTTP1Byte.equalsIgnoringCase(bytes, name, "expect"):
                if HTTP1Byte.equalsIgnoringCase(bytes, value, "100-continue") { out.expectsContinue = true }
            default:
                break
            }
        }
        guard connectionFields > 0 else { return .success(out) }
        // The options `Connection` lists: close, keep-alive, or names of more hop-by-hop fields
        // (gathered first, then matched in one pass over the fields: linear in the head, however
        // long a hostile list is).
        var named = Set<String>()
        for i in fields.indices where fields[i].kind == .hopByHop && fields[i].name.count == 10
            && HTTP1Byte.equalsIgnoringCase(bytes, fields[i].name, "connection") {
            var p = fields[i].value.lowerBound
            let end = fields[i].value.upperBound
            while p < end {
                while p < end, HTTP1Byte.isWhitespace(bytes[p]) || bytes[p] == UInt8(ascii: ",") { p += 1 }
                let start = p
                while p < end, HTTP1Byte.isToken(bytes[p]) { p += 1 }
                let token = start..<p
                while p < end, HTTP1Byte.isWhitespace(bytes[p]) { p += 1 }
                guard p == end || bytes[p] == UInt8(ascii: ",") else { return .failure(.badFieldLine) }
                if token.isEmpty { continue }
                if HTTP1Byte.equalsIgnoringCase(bytes, token, "close") {
                    out.close = true
                } else if HTTP1Byte.equalsIgnoringCase(bytes, token, "keep-alive") {
                    out.keepAlive = true
                } else if HTTP1Byte.equalsIgnoringCase(bytes, token, "content-length")
                    || HTTP1Byte.equalsIgnoringCase(bytes, token, "transfer-encoding")
                    || HTTP1Byte.equalsIgnoringCase(bytes, token, "host") {
                    // ci/mutants: scanner-connection-framing (the next line)
                    return .failure(.connectionNamesFraming)
                } else {
                    named.insert(lowercased(bytes, token))
                }
            }
        }
        if !named.isEmpty {
            for j in fields.indices where fields[j].kind == .endToEnd && named.contains(lowercased(bytes, fields[j].name)) {
                fields[j].kind = .hopByHop
            }
        }
        return .success(out)
    }

    /// A token (ASCII) in lower case.
    static func lowercased(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self).lowercased()
    }

    struct Classified {
        var contentLength: Int?
        var chunked = false
        var host: Range<Int>?
        var close = false
        var keepAlive = false
        var upgrade = false
        var expectsContinue = false
    }

    /// A Content-Length value: 1 to 18 digits and nothing else.
    static func digits(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var n = 0
        for p in range {
            let b = bytes[p]
            guard b >= 0x30, b <= 0x39 else { return nil }
            n = n * 10 + Int(b - 0x30)
        }
        return n
    }

    /// A Host value: a non-empty reg-name, IPv4 or bracketed IPv6 literal with an optional port.
    static func isHost(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard !range.isEmpty else { return false }
        for p in range {
            let b = bytes[p]
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: continue
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"),
                 UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "%"), UInt8(ascii: "!"), UInt8(ascii: "$"),
                 UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"),
                 UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
                continue
            default:
                return false
            }
        }
        return true
    }
}
