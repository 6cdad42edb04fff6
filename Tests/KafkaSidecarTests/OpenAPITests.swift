import Foundation
import Testing
@testable import KafkaSidecarNIO

@Suite struct OpenAPITests {
    /// The document /openapi.json serves is the fixture (run ci/gen-openapi after editing it).
    @Test func servedDocumentIsTheFixture() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fixture = try String(contentsOf: root.appendingPathComponent("fixtures/openapi/kafka-sidecar.json"), encoding: .utf8)
        #expect(KafkaSidecarOpenAPI.document + "\n" == fixture || KafkaSidecarOpenAPI.document == fixture)
        let object = try JSONSerialization.jsonObject(with: Data(KafkaSidecarOpenAPI.document.utf8)) as? [String: Any]
        let paths = try #require(object?["paths"] as? [String: Any])
        #expect(Set(paths.keys) == ["/producers/{topic}", "/topics/{topic}", "/topics/{topic}/partitions/{partition}", "/openapi.json"])
    }
}
