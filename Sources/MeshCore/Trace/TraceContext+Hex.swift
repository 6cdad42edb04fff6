import W3CTraceContext

extension TraceContext {
    /// The `traceparent` header value, the same text as `traceParentHeaderValue`, written in place:
    /// one allocation, where the library's interpolation makes about six.
    public var traceparent: String {
        String(unsafeUninitializedCapacity: 55) { out in
            out[0] = 0x30; out[1] = 0x30; out[2] = 0x2D
            var i = 3
            withUnsafeBytes(of: traceID.bytes) { for byte in $0 { Self.hex(byte, into: out, at: &i) } }
            out[i] = 0x2D; i += 1
            withUnsafeBytes(of: spanID.bytes) { for byte in $0 { Self.hex(byte, into: out, at: &i) } }
            out[i] = 0x2D; i += 1
            Self.hex(flags.rawValue, into: out, at: &i)
            return i
        }
    }

    /// The trace id as 32 lower-case hex digits.
    public var traceIDHex: String {
        String(unsafeUninitializedCapacity: 32) { out in
            var i = 0
            withUnsafeBytes(of: traceID.bytes) { for byte in $0 { Self.hex(byte, into: out, at: &i) } }
            return i
        }
    }

    @inline(__always)
    private static func hex(_ byte: UInt8, into out: UnsafeMutableBufferPointer<UInt8>, at i: inout Int) {
        let digits: StaticString = "0123456789abcdef"
        out[i] = digits.utf8Start[Int(byte >> 4)]
        out[i + 1] = digits.utf8Start[Int(byte & 0xF)]
        i += 2
    }
}
