import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Writes each log line with one `write(2)`, in swift-log's `StreamLogHandler` format.
///
/// The gateway logs one line per request, so a line's cost is a request's cost. `StreamLogHandler` calls
/// `tzset()` and `strftime` for every line and writes through a locked, flushed `FILE*`: measured at about
/// 50 µs of a cache hit's 230 µs at concurrency 1. Here the timestamp is formatted once a second and the
/// line goes out in a single syscall, whole (no interleaving: short writes to a pipe are atomic, and
/// Linux serialises writes to a file's offset). On an event loop's thread the request lines of up to
/// `LogLineBatch.delay` share that syscall (`LogLineBatch`); call `flushHeldLines()` before the process ends.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:] {
        didSet { prettyMetadata = Self.pretty(metadata) }
    }
    public var metadataProvider: Logger.MetadataProvider?

    private let label: String
    private let descriptor: Int32
    private let stamp: SecondCache
    private var prettyMetadata: String?
    /// How long a request line written on an event loop may be held for others to share its `write`.
    let requestLineDelay: TimeAmount

    /// `descriptor` is 2 (standard error) unless a test captures the output.
    public init(label: String, descriptor: Int32 = 2, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.init(label: label, descriptor: descriptor, metadataProvider: metadataProvider, requestLineDelay: LogLineBatch.delay)
    }

    init(label: String, descriptor: Int32, metadataProvider: Logger.MetadataProvider?, requestLineDelay: TimeAmount) {
        self.label = label
        self.descriptor = descriptor
        self.metadataProvider = metadataProvider
        self.requestLineDelay = requestLineDelay
        stamp = SecondCache.logStamp
    }

    /// Writes the request lines event loops still hold: when the process ends.
    public static func flushHeldLines() {
        LogLineBatch.flushAll()
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let extra = event.metadata.map { $0.isEmpty ? nil : $0 } ?? nil
        let provided = metadataProvider?.get()
        let pretty: String?
        if extra == nil, provided?.isEmpty ?? true {
            pretty = prettyMetadata
        } else {
            var all = metadata
            if let provided { all.merge(provided) { _, new in new } }
            if let extra { all.merge(extra) { _, new in new } }
            pretty = Self.pretty(all)
        }
        let message = event.message.description
        emit(level: event.level, source: event.source, pretty: pretty, delay: nil) { $0.append(contentsOf: message.utf8) }
    }

    /// Logs a message that `message` appends to the line itself, past swift-log's `Logger.Message` and the
    /// `String` it holds: for the request line (`RequestLogLine`), which every request writes. False, with nothing
    /// written, when a metadata provider may add to the line: the caller logs through the `Logger` then.
    func log(level: Logger.Level, source: String, _ message: (inout [UInt8]) -> Void) -> Bool {
        guard metadataProvider == nil else { return false }
        if level >= logLevel { emit(level: level, source: source, pretty: prettyMetadata, delay: requestLineDelay, message) }
        return true
    }

    /// Formats the line, `STAMP LEVEL LABEL: [METADATA ][SOURCE] MESSAGE`, and writes it: on an event loop
    /// straight into the loop's batch buffer, held up to `delay` (nil: written now).
    private func emit(level: Logger.Level, source: String, pretty: String?, delay: TimeAmount?, _ message: (inout [UInt8]) -> Void) {
        let stamp = stamp.now()
        func format(into bytes: inout [UInt8]) {
            bytes.append(contentsOf: stamp.utf8)
            bytes.append(UInt8(ascii: " "))
            bytes.append(contentsOf: level.rawValue.utf8)
            bytes.append(UInt8(ascii: " "))
            bytes.append(contentsOf: label.utf8)
            bytes.append(UInt8(ascii: ":"))
            if let pretty {
                bytes.append(UInt8(ascii: " "))
                bytes.append(contentsOf: pretty.utf8)
            }
            bytes.append(contentsOf: " [".utf8)
            bytes.append(contentsOf: source.utf8)
            bytes.append(contentsOf: "] ".utf8)
            message(&bytes)
            bytes.append(UInt8(ascii: "\n"))
        }
        if LogLineBatch.append(descriptor: descriptor, delay: delay, format) { return }
        var line: [UInt8] = []
        format(into: &line)
        line.withUnsafeBytes { Self.writeAll(descriptor, $0) }
    }

    static func pretty(_ metadata: Logger.Metadata) -> String? {
        metadata.isEmpty ? nil : metadata.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
    }

    /// One `write` for the whole of `bytes`; loops only on a partial write or an interrupt.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written > 0 {
                offset += written
            } else if written < 0, errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
