import NIOCore
import NIOHTTP1

/// A JSON error body with a stable code: `{"error":{"code":"...","message":"..."}}`.
public struct ErrorResponse: Error {
    public var status: HTTPResponseStatus
    /// The stable code clients match on.
    public var code: String
    public var message: String
    /// Headers the answer carries besides the JSON content type.
    public var headers: [(String, String)] = []

    public init(status: HTTPResponseStatus, code: String, message: String, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// The JSON body.
    public func body(allocator: ByteBufferAllocator) -> ByteBuffer {
        func escape(_ s: String) -> String {
            var out = ""
            for c in s.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case _ where c.value < 0x20: out += String(format: "\\u%04x", c.value)
                default: out.unicodeScalars.append(c)
                }
            }
            return out
        }
        return allocator.buffer(string: "{\"error\":{\"code\":\"\(escape(code))\",\"message\":\"\(escape(message))\"}}\n")
    }
}

import Foundation
