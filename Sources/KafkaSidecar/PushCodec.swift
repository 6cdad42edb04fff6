import Foundation
import MeshCore

/// The push wire format between the sidecar and the app, shared by the production driver and the
/// simulator's apps.
///
/// Request body: `{"records":[{"id","topic","partition","offset","timestamp","attempt","key",
/// "value","headers":{...}}]}`. The value is embedded as JSON when JSON values are enabled and it is
/// exactly one valid JSON value; otherwise it is base64 with `"encoding":"base64"`. A key that is
/// not UTF-8 is base64 with `"keyEncoding":"base64"`. Headers are an object, losslessly: a name
/// maps to its value as a string when it is UTF-8, `{"base64":"..."}` when it is not, `null` for a
/// null value, and to a list of those, in record order, when the name repeats.
///
/// Answer: `{"statuses":[{"id","status","reason"?}]}` or the light-mesh result list
/// `[{"record":{"topic","partition","offset"},"processed":bool,"reason"?}]` (processed false is
/// DEADLETTER).
public enum PushCodec {
    /// The push body for `batch`.
    public static func encode(_ batch: PushBatch, jsonValues: Bool) -> [UInt8] {
        var w = JSONWriter(capacity: 64 + batch.entries.count * 192)
        w.raw("{\"records\":[")
        for (n, entry) in batch.entries.enumerated() {
            let r = entry.record
            if n > 0 { w.raw(",") }
            w.raw("{\"id\":")
            w.string(PushBatch.recordID(r.topicPartition, r.offset))
            w.raw(",\"topic\":")
            w.string(r.topicPartition.topic)
            w.raw(",\"partition\":")
            w.int(r.topicPartition.partition)
            w.raw(",\"offset\":")
            w.int(r.offset)
            w.raw(",\"timestamp\":")
            w.int(r.timestamp)
            w.raw(",\"attempt\":")
            w.int(entry.attempt)
            w.raw(",\"key\":")
            if let key = r.key {
                if let text = String(validating: key, as: UTF8.self) { w.string(text) } else {
                    w.base64(key)
                    w.raw(",\"keyEncoding\":\"base64\"")
                }
            } else {
                w.raw("null")
            }
            w.raw(",\"value\":")
            if let value = r.value {
                if jsonValues && JSONValidator.isValid(value) { w.raw(value) } else {
                    w.base64(value)
                    w.raw(",\"encoding\":\"base64\"")
                }
            } else {
                w.raw("null")
            }
            w.raw(",\"headers\":")
            headers(r.headers, &w)
            w.raw("}")
        }
        w.raw("]}")
        return w.bytes
    }

    /// The headers object: names in first-seen order, each once (repeats as a list).
    static func headers(_ headers: [KafkaHeader], _ w: inout JSONWriter) {
        w.raw("{")
        var counts: [String: Int] = [:]
        for h in headers { counts[h.key, default: 0] += 1 }
        var done: Set<String> = []
        for (i, h) in headers.enumerated() where !done.contains(h.key) {
            if !done.isEmpty { w.raw(",") }
            done.insert(h.key)
            w.string(h.key)
            w.raw(":")
            guard counts[h.key, default: 0] > 1 else {
                headerValue(h.value, &w)
                continue
            }
            w.raw("[")
            var first = true
            for other in headers[i...] where other.key == h.key {
                if !first { w.raw(",") }
                first = false
                headerValue(other.value, &w)
            }
            w.raw("]")
        }
        w.raw("}")
    }

    private static func headerValue(_ value: [UInt8]?, _ w: inout JSONWriter) {
        guard let value else { return w.raw("null") }
        if let text = String(validating: value, as: UTF8.self) {
            w.string(text)
        } else {
            w.raw("{\"base64\":")
            w.base64(value)
            w.raw("}")
        }
    }

    /// The batch's own trace context: the first record's `traceparent` continued with a new span,
    /// or a new trace.
    public static func traceparent(for batch: PushBatch, random: inout some RandomSource) -> String {
        let header = batch.entries.first?.record.headers.last { $0.key == "traceparent" }?.value
        let incoming = header.map { String(decoding: $0, as: UTF8.self) }
        return TracePropagation.nextHop(traceparent: incoming, tracestate: nil, random: &random).context.traceparent
    }

    /// Decodes the app's answer to a push with HTTP `status` and `body`.
    public static func decode(status: Int, body: [UInt8]) -> PushAnswer {
        guard (200..<300).contains(status) else { return .failed(reason: "the app answered \(status)") }
        guard !body.isEmpty, let json = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            return .failed(reason: "the app's answer is not JSON")
        }
        var verdicts: [String: PushAnswer.Verdict] = [:]
        func add(_ id: String, _ v: PushAnswer.Verdict) -> Bool {
            if let old = verdicts[id], old.verdict != v.verdict { return false }
            verdicts[id] = v
            return true
        }
        if let object = json as? [String: Any], let statuses = object["statuses"] as? [Any] {
            for item in statuses {
                guard let s = item as? [String: Any], let id = s["id"] as? String, let text = s["status"] as? String,
                      let verdict = AppVerdict(rawValue: text.uppercased()) else {
                    return .failed(reason: "the app's answer has a malformed status")
                }
                guard add(id, PushAnswer.Verdict(verdict, reason: s["reason"] as? String)) else {
                    return .failed(reason: "the app gave \(id) two different statuses")
                }
            }
        } else if let results = json as? [Any] {
            for item in results {
                guard let s = item as? [String: Any], let record = s["record"] as? [String: Any],
                      let topic = record["topic"] as? String, let partition = (record["partition"] as? NSNumber)?.int32Value,
                      let offset = (record["offset"] as? NSNumber)?.int64Value, let processed = s["processed"] as? Bool else {
                    return .failed(reason: "the app's answer has a malformed result")
                }
                let id = PushBatch.recordID(TopicPartition(topic, partition), offset)
                guard add(id, PushAnswer.Verdict(processed ? .success : .deadLetter, reason: s["reason"] as? String ?? s["error"] as? String)) else {
                    return .failed(reason: "the app gave \(id) two different results")
                }
            }
        } else {
            return .failed(reason: "the app's answer has neither statuses nor results")
        }
        guard !verdicts.isEmpty else { return .failed(reason: "the app's answer is empty") }
        return .verdicts(verdicts)
    }

    /// The app's answer for `verdicts`, in the statuses shape (what the simulated apps send).
    public static func encodeAnswer(_ verdicts: [(id: String, verdict: AppVerdict, reason: String?)]) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"statuses\":[")
        for (n, v) in verdicts.enumerated() {
            if n > 0 { w.raw(",") }
            w.raw("{\"id\":")
            w.string(v.id)
            w.raw(",\"status\":")
            w.string(v.verdict.rawValue)
            if let reason = v.reason {
                w.raw(",\"reason\":")
                w.string(reason)
            }
            w.raw("}")
        }
        w.raw("]}")
        return w.bytes
    }
}
