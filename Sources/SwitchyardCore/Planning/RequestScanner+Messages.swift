#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension RequestScanner {
    mutating func messages(_ summary: inout ChatRequestSummary, _ estimate: inout TokenEstimate) throws(RequestScanError) {
        guard peek() == UInt8(ascii: "[") else { throw fail("'messages' must be an array of message objects") }
        i += 1
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            throw fail("'messages' must contain at least one message")
        }
        while true {
            skipSpace()
            try message(&summary, &estimate)
            summary.messageCount += 1
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                i += 1
                continue
            }
            summary.messagesEnd = i
            try expect(UInt8(ascii: "]"), "expected ',' or ']' in 'messages'")
            return
        }
    }

    mutating func message(_ summary: inout ChatRequestSummary, _ estimate: inout TokenEstimate) throws(RequestScanError) {
        guard peek() == UInt8(ascii: "{") else { throw fail("each message must be an object with 'role' and 'content'") }
        i += 1
        var cost = TokenEstimate.TextCost()
        var images = 0
        var role: String?
        skipSpace()
        if peek() != UInt8(ascii: "}") {
            while true {
                skipSpace()
                let key = try string(cost: nil)
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                switch key {
                case "role":
                    guard peek() == UInt8(ascii: "\"") else { throw fail("a message's 'role' must be a string") }
                    var roleCost = TokenEstimate.TextCost()
                    role = try string(cost: &roleCost)
                    cost += roleCost
                case "content":
                    try content(&cost, &images)
                default:
                    // name, tool_calls, tool_call_id, …: the model reads these too.
                    try value(depth: 3, cost: &cost)
                }
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                try expect(UInt8(ascii: "}"), "expected ',' or '}' in a message")
                break
            }
        } else {
            i += 1
        }
        guard let role else { throw fail("message \(summary.messageCount) has no 'role'") }
        summary.lastRole = role
        estimate.addMessage(text: cost, images: images)
    }

    mutating func content(_ cost: inout TokenEstimate.TextCost, _ images: inout Int) throws(RequestScanError) {
        switch peek() {
        case UInt8(ascii: "\""):
            _ = try string(cost: &cost)
        case UInt8(ascii: "n"):
            try literal("null")
        case UInt8(ascii: "["):
            // Content parts: text parts are charged as text, image parts at a fixed price.
            let start = i
            var partsCost = TokenEstimate.TextCost()
            try value(depth: 3, cost: &partsCost)
            cost += partsCost
            images += count(of: "image_url", in: start..<i)
        default:
            throw fail("a message's 'content' must be a string, an array of parts, or null")
        }
    }

    func count(of needle: StaticString, in range: Range<Int>) -> Int {
        let n = needle.utf8CodeUnitCount
        guard range.count >= n else { return 0 }
        var found = 0
        var j = range.lowerBound
        while j <= range.upperBound - n {
            if memcmp(bytes.baseAddress! + j, needle.utf8Start, n) == 0 {
                found += 1
                j += n
            } else {
                j += 1
            }
        }
        return found
    }
}
