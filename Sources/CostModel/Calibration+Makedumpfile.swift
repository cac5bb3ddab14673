import Foundation
import MemoryModel

/// CPU time of makedumpfile's own work on a vmcore (issue 17 §3): reading
/// and filtering every page of the dump's memory, then reading, compressing
/// and writing each page it keeps. Calibrated against real makedumpfile
/// 1.7.2 runs (`scripts/makedumpfile-cpu.sh`; `makedumpfile` in the
/// calibration file, docs/CALIBRATION.md). The compression level is the one
/// 1.7.2 hard-codes for each compressor (zlib `compress2(..., Z_BEST_SPEED)`,
/// lzo1x_1, zstd level 1), so the compressor alone picks the cost.
public struct MakedumpfileCost: Sendable, Equatable {
    /// CPU nanoseconds per page of the dump's memory (read the headers and
    /// the page flags, build the bitmaps: `create_dump_bitmap()`).
    public var scanNanosecondsPerPage: Double
    /// CPU nanoseconds per page kept, by compressor (`zlib`, `lzo`,
    /// `snappy`, `zstd`, `none` for `-E`): read it, compress it, write it.
    public var storedNanosecondsPerPage: [String: Double]
    /// The ranges of those costs over the calibration runs (content dependent).
    public var storedRange: [String: ClosedRange<Double>]
    public var source: String

    static func parse(_ raw: Any?, origin: String) throws -> MakedumpfileCost? {
        guard let raw else { return nil }
        guard let o = raw as? [String: Any], let scan = o["scan_ns_per_page"] as? Double, let stored = o["stored_ns_per_page"] as? [String: Any],
              let src = o["source"] as? String, scan.isFinite, (0...1e9).contains(scan) else {
            throw CocomemError(.invalidScenario, "\(origin): 'makedumpfile' needs {scan_ns_per_page, stored_ns_per_page {compressor: ns}, source}")
        }
        var costs: [String: Double] = [:], ranges: [String: ClosedRange<Double>] = [:]
        for (k, v) in stored {
            guard let v = v as? Double, v.isFinite, (0...1e9).contains(v) else {
                throw CocomemError(.invalidScenario, "\(origin): 'makedumpfile.stored_ns_per_page.\(k)' is not a number of ns from 0 to 10^9")
            }
            costs[k] = v
        }
        for (k, v) in o["stored_ns_range"] as? [String: Any] ?? [:] {
            guard let a = v as? [Double], a.count == 2, a[0] <= a[1], a[0] >= 0, a[1] <= 1e9 else {
                throw CocomemError(.invalidScenario, "\(origin): 'makedumpfile.stored_ns_range.\(k)' must be [low, high] ns")
            }
            ranges[k] = a[0]...a[1]
        }
        return MakedumpfileCost(scanNanosecondsPerPage: scan, storedNanosecondsPerPage: costs, storedRange: ranges, source: src)
    }

    /// makedumpfile's single-threaded CPU seconds for a dump of
    /// `totalPages` pages of which it keeps `storedPages`, with `compressor`;
    /// nil when the compressor was not measured (the installed makedumpfile
    /// was built without it). `end` takes the ends of the measured ranges.
    /// - Complexity: O(1).
    public func cpuSeconds(totalPages: UInt64, storedPages: UInt64, compressor: String, end: CostEnd? = nil) -> Double? {
        guard var k = storedNanosecondsPerPage[compressor] else { return nil }
        if let end, let r = storedRange[compressor] { k = end == .low ? r.lowerBound : r.upperBound }
        return (Double(totalPages) * scanNanosecondsPerPage + Double(storedPages) * k) / 1e9
    }
}
