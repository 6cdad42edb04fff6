import NIOCore
import NIOHTTP1

/// A JSON error body with a stable code: `{"error":{"code":"...","message":"..."}}`.
struct ErrorResponse: Error {
    var status: HTTPResponseStatus
    var code: String
    var message: String
    var headers: [(String, String)] = []

    func body(allocator: ByteBufferAllocator) -> ByteBuffer {
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
