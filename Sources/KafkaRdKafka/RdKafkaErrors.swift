import CRdKafka
import MeshCore

extension KafkaError {
    /// Maps a librdkafka error code to a typed error; the code is librdkafka's name, lower-cased
    /// without leading underscores (`unknown_topic_or_part`, `msg_timed_out`, `transport`).
    init(rdkafka err: rd_kafka_resp_err_t, context: String = "", outcomeUnknown: Bool = false) {
        let name = String(cString: rd_kafka_err2name(err)).lowercased().trimmingPrefix("_")
        let text = String(cString: rd_kafka_err2str(err))
        self.init(
            code: String(name), message: context.isEmpty ? text : "\(context): \(text)",
            retriable: KafkaError.retriableCodes.contains(err), fatal: err == RD_KAFKA_RESP_ERR__FATAL,
            outcomeUnknown: outcomeUnknown)
    }

    /// Takes ownership of an `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, context: String = "") {
        let code = rd_kafka_error_code(error)
        let text = String(cString: rd_kafka_error_string(error))
        let name = String(cString: rd_kafka_err2name(code)).lowercased().trimmingPrefix("_")
        self.init(
            code: String(name), message: context.isEmpty ? text : "\(context): \(text)",
            retriable: rd_kafka_error_is_retriable(error) != 0, fatal: rd_kafka_error_is_fatal(error) != 0,
            outcomeUnknown: false)
        if rd_kafka_error_txn_requires_abort(error) != 0 { self.message += " (transaction must be aborted)" }
        rd_kafka_error_destroy(error)
    }

    static let retriableCodes: Set<rd_kafka_resp_err_t> = [
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
    ]

    static func invalidConfig(_ message: String) -> KafkaError {
        KafkaError(code: "invalid_config", message: message)
    }
}

extension Substring {
    fileprivate func trimmingPrefix(_ c: Character) -> Substring {
        var s = self
        while s.first == c { s = s.dropFirst() }
        return s
    }
}

extension String {
    fileprivate func trimmingPrefix(_ c: Character) -> Substring { self[...].trimmingPrefix(c) }
}
