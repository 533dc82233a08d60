import CCurlShim
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One request for the load generator.
struct LoadRequest {
    var url: String
    var body: [UInt8]
    var headers: [String] = ["Content-Type: application/json"]
    /// Keep the response body (stream checks need it; throughput runs do not).
    var keepBody = false
    /// The caller's own marker, returned with the result.
    var tag = 0
    /// GET instead of POST (the body is then ignored).
    var get = false
}

/// What one request got.
struct LoadResult {
    var tag: Int
    var status: Int
    /// From the send (closed loop) or from the intended send time (open loop), so a stall cannot hide.
    var latencyNs: UInt64
    /// Until the first body byte.
    var firstByteNs: UInt64
    /// Until the first byte of a streamed answer's first text (`"content":"`), 0 if none came or the body was not kept.
    var firstContentNs: UInt64 = 0
    /// `x-switchyard-*` response headers, names lowercased.
    var headers: [String: String]
    var body: [UInt8]
    var error: String?
    /// When the request completed, monotonic.
    var completedAt: UInt64
}

enum Clock {
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Drives many keep-alive connections from one thread with libcurl's multi interface. Callbacks record
/// timings as bytes arrive; nothing hops between threads or tasks on the measuring path.
final class LoadGenerator {
    private final class Slot {
        let handle: UnsafeMutableRawPointer
        var request = LoadRequest(url: "", body: [])
        var headerList: UnsafeMutablePointer<curl_slist>?
        var headerListFor: [String]?
        var bodyStorage: UnsafeMutablePointer<UInt8>?
        var started: UInt64 = 0
        var intended: UInt64 = 0
        var firstByte: UInt64 = 0
        var firstContent: UInt64 = 0
        var headers: [String: String] = [:]
        var body: [UInt8] = []

        init() {
            handle = curl_easy_init()!
        }

        deinit {
            curl_slist_free_all(headerList)
            bodyStorage?.deallocate()
            curl_easy_cleanup(handle)
        }
    }

    /// A label for the live progress line on stderr; nil prints nothing.
    static nonisolated(unsafe) var progressLabel: String?
    private var progressStarted: UInt64 = 0
    private var progressLast: UInt64 = 0
    private var progressDone = 0
    private var progressErrors = 0

    private let multi: UnsafeMutableRawPointer
    private var slots: [Slot] = []
    private var idle: [Slot] = []

    init(connections: Int) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        multi = curl_multi_init()!
        _ = sy_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, connections + 4)
        _ = sy_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, connections + 4)
        slots = (0..<connections).map { _ in Slot() }
        idle = slots
    }

    deinit {
        for slot in slots { curl_multi_remove_handle(multi, slot.handle) }
        slots = []
        curl_multi_cleanup(multi)
    }

    /// CPU time this process has used, in microseconds (the generator's own cost).
    static func processCPUMicros() -> UInt64 {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return UInt64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000 + UInt64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
    }

    /// Closed loop: keeps every connection busy until `until` (monotonic ns); `next` gives each new request.
    func runClosed(until: UInt64, next: () -> LoadRequest?, done: (LoadResult) -> Void) {
        var running = 0
        var exhausted = false
        func fill() {
            while !exhausted, Clock.now() < until, let slot = idle.popLast() {
                guard let request = next() else {
                    idle.append(slot)
                    exhausted = true
                    return
                }
                start(slot, request, intended: nil)
                running += 1
            }
        }
        fill()
        while running > 0 {
            pump { result in
                running -= 1
                done(result)
            }
            fill()
        }
    }

    /// Open loop: sends at `rate` per second regardless of answers until `until`; latency counts from the
    /// intended send time, so a gateway that stalls cannot hide behind coordinated omission.
    func runOpen(rate: Double, until: UInt64, next: () -> LoadRequest?, done: (LoadResult) -> Void) {
        let interval = UInt64(1e9 / max(rate, 0.001))
        var due = Clock.now()
        var running = 0
        var backlog: [(LoadRequest, UInt64)] = []
        while true {
            let now = Clock.now()
            while due <= now, due < until {
                if let request = next() { backlog.append((request, due)) }
                due += interval
            }
            while !backlog.isEmpty, let slot = idle.popLast() {
                let (request, intended) = backlog.removeFirst()
                start(slot, request, intended: intended)
                running += 1
            }
            if running == 0 && backlog.isEmpty && due >= until { return }
            pump { result in
                running -= 1
                done(result)
            }
        }
    }

    private func start(_ slot: Slot, _ request: LoadRequest, intended: UInt64?) {
        slot.request = request
        slot.headers = [:]
        slot.body = []
        slot.firstByte = 0
        slot.firstContent = 0
        if slot.headerListFor != request.headers {
            curl_slist_free_all(slot.headerList)
            slot.headerList = nil
            for header in request.headers + ["Expect:"] { slot.headerList = curl_slist_append(slot.headerList, header) }
            slot.headerListFor = request.headers
        }
        slot.bodyStorage?.deallocate()
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: max(request.body.count, 1))
        storage.initialize(from: request.body, count: request.body.count)
        slot.bodyStorage = storage
        let h = slot.handle
        _ = sy_easy_setopt_string(h, CURLOPT_URL, request.url)
        if request.get {
            _ = sy_easy_setopt_long(h, CURLOPT_HTTPGET, 1)
        } else {
            _ = sy_easy_setopt_long(h, CURLOPT_POST, 1)
            _ = sy_easy_setopt_pointer(h, CURLOPT_POSTFIELDS, storage)
            _ = sy_easy_setopt_long(h, CURLOPT_POSTFIELDSIZE, request.body.count)
        }
        _ = sy_easy_setopt_pointer(h, CURLOPT_HTTPHEADER, slot.headerList)
        _ = sy_easy_setopt_long(h, CURLOPT_TCP_NODELAY, 1)
        _ = sy_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = sy_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, 120_000)
        let user = Unmanaged.passUnretained(slot).toOpaque()
        _ = sy_easy_setopt_write(h, CURLOPT_WRITEFUNCTION, LoadGenerator.onBody)
        _ = sy_easy_setopt_pointer(h, CURLOPT_WRITEDATA, user)
        _ = sy_easy_setopt_write(h, CURLOPT_HEADERFUNCTION, LoadGenerator.onHeader)
        _ = sy_easy_setopt_pointer(h, CURLOPT_HEADERDATA, user)
        _ = sy_easy_setopt_pointer(h, CURLOPT_PRIVATE, user)
        slot.started = Clock.now()
        slot.intended = intended ?? slot.started
        curl_multi_add_handle(multi, h)
    }

    private static let onBody: sy_write_callback = { data, size, count, user in
        let slot = Unmanaged<Slot>.fromOpaque(user!).takeUnretainedValue()
        let n = size * count
        if slot.firstByte == 0 { slot.firstByte = Clock.now() }
        if slot.request.keepBody, let data {
            data.withMemoryRebound(to: UInt8.self, capacity: n) { slot.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
            if slot.firstContent == 0, contentBegins(in: slot.body, last: n) { slot.firstContent = Clock.now() }
        }
        return n
    }

    private static let contentMarker = Array(#""content":""#.utf8)

    /// Whether the last `count` bytes of `body` (with the marker's length before them, for a marker split
    /// between two reads) hold the start of an answer's text: `"content":"` and a character (a role chunk's
    /// `"content":""` is not text).
    private static func contentBegins(in body: [UInt8], last count: Int) -> Bool {
        var rest = body[max(0, body.count - count - contentMarker.count - 1)...]
        while let found = rest.firstRange(of: contentMarker) {
            guard found.upperBound < body.endIndex else { return false }
            if body[found.upperBound] != UInt8(ascii: "\"") { return true }
            rest = body[found.upperBound...]
        }
        return false
    }

    private static let onHeader: sy_write_callback = { data, size, count, user in
        let slot = Unmanaged<Slot>.fromOpaque(user!).takeUnretainedValue()
        let n = size * count
        guard let data, n > 14 else { return n }
        // Only x-switchyard-* and retry-after matter: test the bytes before building any string.
        let bytes = UnsafeRawBufferPointer(start: data, count: n)
        guard hasPrefix(bytes, "x-switchyard-") || hasPrefix(bytes, "retry-after") else { return n }
        // Raw bytes, no Foundation: this runs inside the timed window, between the answer's bytes and its end.
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return n }
        var start = colon + 1
        var end = n
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 || bytes[end - 1] == 0x0D || bytes[end - 1] == 0x0A { end -= 1 }
        let name = String(decoding: bytes[..<colon].lazy.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
        slot.headers[name] = String(decoding: bytes[start..<end], as: UTF8.self)
        return n
    }

    /// Case-insensitive ASCII prefix test on raw bytes.
    private static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        for i in 0..<count where bytes[i] | 0x20 != prefix.utf8Start[i] | 0x20 { return false }
        return true
    }

    private func progress(_ result: LoadResult) {
        guard let label = Self.progressLabel else { return }
        if progressStarted == 0 { progressStarted = result.completedAt }
        progressDone += 1
        if result.status != 200 || result.error != nil { progressErrors += 1 }
        guard result.completedAt - progressLast >= 1_000_000_000 else { return }
        progressLast = result.completedAt
        let elapsed = Double(result.completedAt - progressStarted) / 1e9
        let rps = elapsed > 0 ? Double(progressDone) / elapsed : 0
        FileHandle.standardError.write(Data("\r  \(label): \(String(format: "%5.1f", elapsed))s  \(Int(rps)) req/s  \(progressDone) done  \(progressErrors) errors   ".utf8))
    }

    /// Waits for progress and reports finished requests.
    private func pump(_ finished: (LoadResult) -> Void) {
        var stillRunning: Int32 = 0
        curl_multi_perform(multi, &stillRunning)
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            // The answer is whole: stop the clock before the generator's own bookkeeping.
            let now = Clock.now()
            let code = message.pointee.data.result
            var raw: UnsafeMutableRawPointer?
            _ = sy_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &raw)
            let slot = Unmanaged<Slot>.fromOpaque(raw!).takeUnretainedValue()
            var status = 0
            _ = sy_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            curl_multi_remove_handle(multi, easy)
            let result = LoadResult(
                tag: slot.request.tag, status: status, latencyNs: now - slot.intended,
                firstByteNs: slot.firstByte == 0 ? now - slot.intended : slot.firstByte - slot.intended,
                firstContentNs: slot.firstContent == 0 ? 0 : slot.firstContent - slot.intended, headers: slot.headers, body: slot.body,
                error: code == CURLE_OK ? nil : String(cString: curl_easy_strerror(code)), completedAt: now)
            idle.append(slot)
            progress(result)
            finished(result)
        }
        if stillRunning > 0 || queued > 0 {
            var numfds: Int32 = 0
            curl_multi_poll(multi, nil, 0, 5, &numfds)
        }
    }
}
