import Foundation
import Histogram

/// A self-contained HTML page (inline CSS and SVG, no external assets): the summary, latency distributions,
/// and the failover timeline with the bad key's state changes.
enum HTMLReport {
    static func render(_ reports: [ScenarioReport]) -> String {
        var body = "<h1>Switchyard bench</h1><p class=muted>\(escape(Date().description)) · release build: \(isRelease ? "yes" : "NO (debug figures mean nothing)")</p>"
        body += "<table><tr><th>scenario</th><th>result</th><th>figures</th><th>pass when</th></tr>"
        for r in reports {
            let figures = r.figures.map { "<code>\(escape($0.name))=\(Report.format($0.value))</code>" }.joined(separator: " ")
            body += "<tr><td>\(r.name)</td><td class=\(r.skipped ? "skip" : r.passed ? "pass" : "fail")>\(r.verdict)</td><td>\(figures)</td><td>\(escape(r.condition))</td></tr>"
        }
        body += "</table>"
        for r in reports {
            if let histogram = r.latencyHistogram, histogram.totalCount > 0 {
                body += "<h2>\(r.name): \(escape(r.latencyLabel))</h2>" + latencyChart(histogram)
            }
            if !r.notes.isEmpty {
                body += "<h2>\(r.name): notes</h2><pre>" + r.notes.map(escape).joined(separator: "\n") + "</pre>"
            }
            if !r.details.isEmpty {
                body += "<h2>\(r.name): details</h2><p>" + r.details.map { "<code>\(escape($0.name))=\(Report.format($0.value))</code>" }.joined(separator: " ") + "</p>"
            }
            if r.timeline.count > 1 {
                body += "<h2>\(r.name): throughput and errors per second</h2>" + timelineChart(r.timeline, events: r.events)
            }
        }
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>Switchyard bench</title><style>
            body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:32px;color:#1d2330;background:#fbfbfd}
            h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}.muted{color:#6b7280}
            table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0001}td,th{padding:6px 10px;border-bottom:1px solid #eceef3;text-align:left;vertical-align:top}
            code{font-size:12px;margin-right:8px;white-space:nowrap}pre{font-size:12px;background:#fff;padding:10px;box-shadow:0 1px 2px #0001;white-space:pre-wrap}.pass{color:#0a7d32;font-weight:600}.fail{color:#c0262d;font-weight:600}.skip{color:#6b7280;font-weight:600}
            svg{background:#fff;box-shadow:0 1px 2px #0001}text{font-size:11px;fill:#4b5563}
            </style></head><body>\(body)</body></html>
            """
    }

    static var isRelease: Bool {
        #if DEBUG
        false
        #else
        true
        #endif
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Latency at percentiles as bars.
    static func latencyChart(_ histogram: Histogram<UInt64>) -> String {
        let percentiles: [Double] = [10, 25, 50, 75, 90, 95, 99, 99.9, 100]
        let values = percentiles.map { Double(histogram.valueAtPercentile($0)) / 1e6 }
        let top = max(values.max() ?? 1, 0.001)
        let width = 760.0, height = 220.0, left = 50.0, bottom = 30.0
        let bar = (width - left - 20) / Double(values.count)
        var svg = "<svg width=\(Int(width)) height=\(Int(height))>"
        for (i, v) in values.enumerated() {
            let h = (height - bottom - 20) * v / top
            let x = left + Double(i) * bar + 6
            svg += "<rect x=\(x) y=\(height - bottom - h) width=\(bar - 12) height=\(h) fill=#4f7cff rx=3></rect>"
            svg += "<text x=\(x) y=\(height - bottom - h - 4)>\(String(format: v < 1 ? "%.3f" : "%.1f", v)) ms</text>"
            svg += "<text x=\(x) y=\(height - 10)>p\(Report.format(percentiles[i]))</text>"
        }
        return svg + "</svg>"
    }

    /// Requests and errors per second, with vertical markers for events (fault start, key state changes).
    static func timelineChart(_ samples: [(second: Int, requests: Int, errors: Int)], events: [(second: Double, text: String)]) -> String {
        let width = 760.0, height = 260.0, left = 60.0, bottom = 30.0, top = 20.0
        let seconds = Double((samples.map(\.second).max() ?? 1) + 1)
        let peak = Double(max(samples.map(\.requests).max() ?? 1, 1))
        func x(_ s: Double) -> Double { left + (width - left - 20) * s / seconds }
        func y(_ v: Double) -> Double { height - bottom - (height - bottom - top) * v / peak }
        var svg = "<svg width=\(Int(width)) height=\(Int(height))>"
        svg += "<text x=4 y=\(top + 4)>\(Int(peak))/s</text><text x=4 y=\(height - bottom)>0</text>"
        let line = samples.map { "\(x(Double($0.second) + 0.5)),\(y(Double($0.requests)))" }.joined(separator: " ")
        svg += "<polyline points=\"\(line)\" fill=none stroke=#4f7cff stroke-width=2></polyline>"
        let errors = samples.map { "\(x(Double($0.second) + 0.5)),\(y(Double($0.errors)))" }.joined(separator: " ")
        svg += "<polyline points=\"\(errors)\" fill=none stroke=#c0262d stroke-width=2></polyline>"
        for (i, event) in events.enumerated() {
            let ex = x(event.second)
            svg += "<line x1=\(ex) x2=\(ex) y1=\(top) y2=\(height - bottom) stroke=#f59e0b stroke-dasharray=4></line>"
            svg += "<text x=\(ex + 3) y=\(top + 12 + Double(i % 6) * 13)>\(escape(event.text))</text>"
        }
        for s in stride(from: 0, to: Int(seconds) + 1, by: max(1, Int(seconds) / 10)) {
            svg += "<text x=\(x(Double(s))) y=\(height - 10)>\(s)s</text>"
        }
        svg += "<text x=\(width - 200) y=\(top + 4) style=\"fill:#4f7cff\">requests/s</text><text x=\(width - 120) y=\(top + 4) style=\"fill:#c0262d\">errors/s</text>"
        return svg + "</svg>"
    }
}
