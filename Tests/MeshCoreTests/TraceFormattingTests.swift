import MeshCore
import Testing
import W3CTraceContext

/// The in-place `traceparent` formatting writes exactly what the library's does.
@Suite struct TraceFormattingTests {
    @Test func traceparentAndTraceIdMatchTheLibrarysText() {
        var random = SeededRandom(seed: 3)
        for flags in [TraceFlags(rawValue: 0), .sampled, TraceFlags(rawValue: 0xA5)] {
            for _ in 0..<200 {
                let c = TraceContext(traceID: .random(using: &random), spanID: .random(using: &random), flags: flags, state: TraceState())
                #expect(c.traceparent == c.traceParentHeaderValue)
                #expect(c.traceIDHex == "\(c.traceID)")
            }
        }
    }
}
