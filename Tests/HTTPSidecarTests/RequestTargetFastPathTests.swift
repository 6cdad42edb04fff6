@testable import HTTPSidecar
import MeshCore
import Testing

/// A target taken as it is (``RequestTarget/alreadyNormal(_:)``) is exactly what the general steps
/// make of it, in every escaped-separator mode, over generated targets built from the bytes that
/// matter to normalizing.
@Suite struct RequestTargetFastPathTests {
    @Test func aTargetTakenAsItIsIsWhatNormalizingMakesOfIt() {
        let alphabet = ["/", "/", "/", ".", ".", "a", "b", "%", "2", "e", "E", "f", "6", "1", "?", "#", "\\", ";", " ", "~", ":", "@", "*", "-", "=", "&", "\u{7F}", "é"]
        var random = SeededRandom(seed: 11)
        var fast = 0
        for n in 0..<200_000 {
            var target = n % 10 == 0 ? "http://h" : "/"
            for _ in 0..<Int(random.next() % 14) { target += alphabet[Int(random.next() % UInt64(alphabet.count))] }
            guard let taken = RequestTarget.alreadyNormal(target) else { continue }
            fast += 1
            for mode in RequestTarget.EscapedSeparators.allCases {
                let general = RequestTarget.normalizeStepByStep(target, escaped: mode)
                #expect(general == .success(taken), "\(target.debugDescription) (\(mode))")
            }
            #expect(taken.originForm == target)
        }
        #expect(fast > 20_000)
    }
}
