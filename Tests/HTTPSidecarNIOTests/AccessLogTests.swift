import Foundation
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import Testing

/// The access log never blocks its caller (an event loop) and does not log query values by default.
@Suite struct AccessLogTests {
    @Test func aStalledOutputDropsEntriesInsteadOfBlocking() async throws {
        signal(SIGPIPE, SIG_IGN)  // as the sidecar does: the pipe closes when this test ends
        let pipe = Pipe()  // nobody reads it: after 64 KB the writer would block
        let log = AccessLog(to: pipe.fileHandleForWriting, maxBuffered: 1 << 20)
        let started = ContinuousClock.now
        for i in 0..<50_000 { log.record([("path", .string("/entry/\(i)/" + String(repeating: "x", count: 150))), ("status", .int(200))]) }
        let took = ContinuousClock.now - started
        #expect(took < .seconds(5), "recording took \(took): the caller waited for the output")
        #expect(log.dropped > 0, "10 MB went somewhere: the buffer is not bounded")
        withExtendedLifetime(pipe) {}
    }

    @Test func queryValuesAreRedactedUnlessAskedFor() {
        let log = AccessLog(to: FileHandle.nullDevice)
        #expect(log.loggedTarget(path: "/a", uri: "/a?token=s3cret&flag&x=1") == "/a?token=*&flag&x=*")
        #expect(log.loggedTarget(path: "/a", uri: "/./a") == "/a")
        let full = AccessLog(to: FileHandle.nullDevice, logQueryValues: true)
        #expect(full.loggedTarget(path: "/a", uri: "/a?token=s3cret") == "/a?token=s3cret")
    }
}
