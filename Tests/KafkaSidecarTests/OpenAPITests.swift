import Foundation
import KafkaSidecar
import MeshCore
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
        let consumer = ["", "/subscription", "/assignments", "/records", "/offsets", "/positions", "/positions/beginning", "/positions/end"]
            .map { "/consumers/{group}/instances/{name}" + $0 }
        #expect(Set(paths.keys) == Set(["/producers/{topic}", "/topics/{topic}", "/topics/{topic}/partitions/{partition}", "/openapi.json",
                                        "/consumers/{group}", "/", "/healthy", "/ready", "/openapi", "/topics", "/topics/{topic}/partitions",
                                        "/topics/{topic}/partitions/{partition}/offsets", "/consumers/{group}/lag",
                                        "/deadletters/{topic}", "/deadletters/{topic}/replay"] + consumer))
    }
}

extension OpenAPITests {
    /// Every consumer path and method the document lists is one the routes take (a refusal of an
    /// empty body is fine; "no such path" or "method not allowed" is not).
    @Test func everyDocumentedConsumerRouteIsRouted() throws {
        let object = try JSONSerialization.jsonObject(with: Data(KafkaSidecarOpenAPI.document.utf8)) as? [String: Any]
        let paths = try #require(object?["paths"] as? [String: [String: Any]])
        var checked = 0
        for (path, methods) in paths where path.hasPrefix("/consumers") && !path.hasSuffix("/lag") {
            let concrete = path.replacingOccurrences(of: "{group}", with: "g").replacingOccurrences(of: "{name}", with: "c1")
            for method in methods.keys {
                let decision = PullRoutes.decide(PullRequest(method: method.uppercased(), path: concrete), flavour: .confluent)
                switch decision {
                case .notPull: Issue.record("\(method) \(path) is not routed")
                case .refuse(let e) where e.status == 404 || e.status == 405: Issue.record("\(method) \(path): \(e.status) \(e.message)")
                default: checked += 1
                }
            }
        }
        #expect(checked == 13)
        // And every documented metadata question is one the metadata routes take.
        var questions = 0
        for (path, methods) in paths where methods["get"] != nil && (path.hasPrefix("/topics") || path.hasSuffix("/lag")) {
            let concrete = path.replacingOccurrences(of: "{topic}", with: "t").replacingOccurrences(of: "{partition}", with: "0")
                .replacingOccurrences(of: "{group}", with: "g")
            if case .query = MetadataRoutes.decide(method: "GET", path: concrete) { questions += 1 } else { Issue.record("GET \(path) is not routed") }
        }
        #expect(questions == 6)
        // And the dead-letter paths, with an empty body and query.
        var jobs = 0
        for (path, methods) in paths where path.hasPrefix("/deadletters") {
            for method in methods.keys {
                let concrete = path.replacingOccurrences(of: "{topic}", with: "t")
                let decision = DeadLetterRoutes.decide(method: method.uppercased(), path: concrete, query: QueryString(pairs: []), body: [], settings: DeadLetterSettings())
                if case .run = decision { jobs += 1 } else { Issue.record("\(method) \(path) is not routed: \(decision)") }
            }
        }
        #expect(jobs == 2)
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
