/// Byte classes of RFC 9110 / RFC 9112 that the framing scanner needs, as branch-light inline tests.
enum HTTP1Byte {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A

    /// `tchar` (RFC 9110 §5.6.2): letters, digits and ``!#$%&'*+-.^_`|~``.
    @inline(__always) static func isToken(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
        default: false
        }
    }

    /// A byte allowed inside a field value: visible ASCII, space, tab. Bytes above 0x7F (obs-text)
    /// are refused: no parser disagreement can hide there, and no legitimate sidecar traffic needs them.
    @inline(__always) static func isFieldValue(_ b: UInt8) -> Bool {
        (b >= 0x20 && b < 0x7F) || b == htab
    }

    /// A byte allowed in a request-target: visible ASCII only (no space, no control, no obs-text).
    @inline(__always) static func isTarget(_ b: UInt8) -> Bool {
        b > 0x20 && b < 0x7F
    }

    @inline(__always) static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }

    /// The value of a hexadecimal digit, or nil.
    @inline(__always) static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: Int(b - 0x30)
        case 0x41...0x46: Int(b - 0x41 + 10)
        case 0x61...0x66: Int(b - 0x61 + 10)
        default: nil
        }
    }

    /// Whether `bytes[range]` equals the lower-case ASCII `lower`, ignoring case.
    @inline(__always) static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lower: StaticString) -> Bool {
        guard range.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        var i = 0
        for p in range {
            var b = bytes[p]
            if b >= 0x41 && b <= 0x5A { b |= 0x20 }
            if b != l[i] { return false }
            i += 1
        }
        return true
    }
}
