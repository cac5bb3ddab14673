import Foundation
import MemoryModel

/// The largest configuration the sources of a calibration measured: a
/// prediction for more vCPUs or more memory is an extrapolation, and
/// reports flag it (`calibrated_range` in the file).
public struct CalibratedRange: Sendable, Equatable {
    public var maxVCPUs: Int
    public var maxMemoryBytes: UInt64
    public var source: String

    static func parse(_ raw: Any?, origin: String) throws -> CalibratedRange? {
        guard let raw else { return nil }
        guard let o = raw as? [String: Any], let v = o["max_vcpus"] as? Double, let m = o["max_memory_gib"] as? Double,
              let s = o["source"] as? String, v >= 1, v <= 1_048_576, v.rounded() == v, m > 0, m <= 1_073_741_824 else {
            throw CocomemError(.invalidScenario, "\(origin): 'calibrated_range' needs {max_vcpus (a whole number 1 to 2^20), max_memory_gib (0 to 2^30], source}")
        }
        return CalibratedRange(maxVCPUs: Int(v), maxMemoryBytes: UInt64(m * 1073741824), source: s)
    }

    /// What lies outside the range for a guest of `vcpus` and `memory`
    /// bytes, as a phrase for a report; nil when both are inside.
    public func extrapolation(vcpus: Int, memory: UInt64) -> String? {
        var parts: [String] = []
        if vcpus > maxVCPUs { parts.append("\(vcpus) vCPUs > \(maxVCPUs) measured") }
        if memory > maxMemoryBytes { parts.append("\(memory >> 30) GiB > \(maxMemoryBytes >> 30) GiB measured") }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }
}

/// Which end of every parameter's range to take (`Calibration.atEnd`).
public enum CostEnd: String, Sendable, CaseIterable {
    /// Every ranged cost at its cheapest: `ns` at the low end, write rates at the high end.
    case low
    /// Every ranged cost at its dearest.
    case high
}

extension Calibration {
    /// The profiles a calibration file names (`profiles`), with their
    /// descriptions, in name order.
    /// - Complexity: O(size of the file).
    static func profiles(in data: Data) -> [(name: String, description: String)] {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let p = root["profiles"] as? [String: Any] else { return [] }
        return p.keys.sorted().map { ($0, ((p[$0] as? [String: Any])?["description"] as? String) ?? "") }
    }

    /// The built-in file's profiles (`cocomem validate --profiles`).
    public static func builtInProfiles() -> [(name: String, description: String)] {
        guard let url = Bundle.module.url(forResource: "calibration", withExtension: "json"),
              let data = try? Data(contentsOf: url) else { return [] }
        return profiles(in: data)
    }

    /// The file's JSON with profile `name` laid over it: each operation the
    /// profile names gets the profile's keys (the rest of its entry stays),
    /// and so do the two write rates. A profile is an overlay of costs
    /// measured on one hardware and software generation; everything it
    /// does not name is the base value, measured elsewhere.
    /// - Throws: `.invalidScenario` for an unknown profile or an override
    ///   of an operation the file does not have.
    static func applyProfile(_ name: String, to root: [String: Any], origin: String) throws -> [String: Any] {
        let all = root["profiles"] as? [String: Any] ?? [:]
        guard let p = all[name] as? [String: Any] else {
            let known = all.keys.sorted().joined(separator: ", ")
            throw CocomemError(.invalidScenario, "\(origin): no calibration profile '\(name)' (known: \(known.isEmpty ? "none" : known))")
        }
        var out = root
        if let overrides = p["ops"] {
            guard let overrides = overrides as? [String: Any], var ops = root["ops"] as? [String: Any] else {
                throw CocomemError(.invalidScenario, "\(origin): profile '\(name)': 'ops' must be an object")
            }
            for (op, v) in overrides {
                guard var base = ops[op] as? [String: Any], let o = v as? [String: Any] else {
                    throw CocomemError(.invalidScenario, "\(origin): profile '\(name)' overrides '\(op)', which is not an operation of the file")
                }
                for (k, x) in o { base[k] = x }
                ops[op] = base
            }
            out["ops"] = ops
        }
        for key in ["core_write_gib_per_s", "shared_write_gib_per_s"] {
            guard let o = p[key] as? [String: Any] else { continue }
            var base = root[key] as? [String: Any] ?? [:]
            for (k, x) in o { base[k] = x }
            out[key] = base
        }
        return out
    }

    /// This calibration with every parameter that has a range set to the
    /// end `end` of it; parameters without a range keep their value. The
    /// model's times grow with every cost, so a time evaluated at `.low`
    /// and at `.high` bounds what the ranges allow (a ratio of two times
    /// need not be monotone: callers take the extremes over both ends and
    /// the base values).
    /// - Complexity: O(operations).
    public func atEnd(_ end: CostEnd) -> Calibration {
        var c = self
        for i in c.ops.indices {
            if let r = c.ops[i].nanosecondsRange { c.ops[i].nanoseconds = end == .low ? r.lowerBound : r.upperBound }
            if let r = c.ops[i].writeRange { c.ops[i].writeGiBPerSecond = end == .low ? r.upperBound : r.lowerBound }
        }
        if let r = coreWriteRange { c.coreWriteGiBPerSecond = end == .low ? r.upperBound : r.lowerBound }
        if let r = sharedWriteRange { c.sharedWriteGiBPerSecond = end == .low ? r.upperBound : r.lowerBound }
        return c
    }

    /// Whether any parameter carries a range (a band is worth computing).
    public var hasRanges: Bool {
        coreWriteRange != nil || sharedWriteRange != nil || ops.contains { $0.nanosecondsRange != nil || $0.writeRange != nil }
    }
}
