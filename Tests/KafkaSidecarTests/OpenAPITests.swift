import Foundation
import KafkaSidecar
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

@Suite struct ReflectedValueTests {
    /// Names the sidecar reflects (group and topic names, messages) cannot break the JSON or the
    /// Prometheus text they are written into.
    @Test func reflectedNamesAreEscaped() throws {
        let hostile = "g\"}\n,\"x\\"
        let json = "{\"v\":" + KafkaSidecar.JSONText.quoted(hostile) + "}"
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]
        #expect(parsed?["v"] == hostile)
        #expect(prometheusLabel(hostile) == "g\\\"}\\n,\\\"x\\\\")
        let error = RESTResponse.error(400, "invalid_body", hostile)
        #expect((try JSONSerialization.jsonObject(with: Data(error.body)) as? [String: [String: String]])?["error"]?["message"] == hostile)
    }
}
