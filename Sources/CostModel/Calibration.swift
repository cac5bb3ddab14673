import Foundation
import MemoryModel

/// The cost of one operation, as the calibration file gives it.
public struct OpCost: Sendable, Equatable {
    /// CPU time on the vCPU that performs it, excluding memory writes.
    public var nanoseconds: Double
    /// Bytes the operation writes (zeroing, clearing); they take time on the
    /// vCPU at the per-core rate and consume the shared memory bandwidth.
    public var bytesWritten: UInt64
    /// Part of the operation that is serialised across all vCPUs on the host
    /// (a lock or a single-threaded VMM path); counted on the vCPU too.
    public var serialNanoseconds: Double
    /// Where the number comes from.
    public var source: String
    /// Rate at which this operation writes its bytes, GiB/s, when it is not
    /// the per-core rate of ordinary stores: the TDX module initialises an
    /// accepted page with MOVDIR64B under the TD's key (`tdg_mem_page_accept.c`),
    /// which runs at its own rate (`write_gib_per_s` in the file; nil: the core rate).
    public var writeGiBPerSecond: Double? = nil
    /// The range of `nanoseconds` the sources allow (`ns_range`), if given.
    public var nanosecondsRange: ClosedRange<Double>? = nil
    /// The range of `writeGiBPerSecond` the sources allow (`write_gib_per_s_range`), if given.
    public var writeRange: ClosedRange<Double>? = nil
}

/// Every number the cost model uses, loaded from one JSON file whose every
/// entry names its source (`Sources/CostModel/Resources/calibration.json`).
public struct Calibration: Sendable {
    public var ops: [OpCost]
    /// Rate at which one vCPU writes (zeroes) memory, GiB/s.
    public var coreWriteGiBPerSecond: Double
    /// Rate at which all vCPUs together can write memory while accepting, GiB/s.
    public var sharedWriteGiBPerSecond: Double
    public var sources: [String: String]
    /// Ranges of the two write rates the sources allow (`range` next to `value`), if given.
    public var coreWriteRange: ClosedRange<Double>? = nil
    public var sharedWriteRange: ClosedRange<Double>? = nil
    /// The profile applied on load (`Calibration+Profiles.swift`); nil: the base values.
    public var profile: String? = nil
    /// The largest configuration any source of this file measured
    /// (`calibrated_range`); predictions beyond it are extrapolations.
    public var calibratedRange: CalibratedRange? = nil
    /// makedumpfile's own CPU cost (`Calibration+Makedumpfile.swift`), if the file has it.
    public var makedumpfile: MakedumpfileCost? = nil

    public subscript(_ op: Op) -> OpCost { ops[op.index] }

    /// The calibration shipped with cocomem, read and checked once per process: a sweep runs thousands
    /// of points with it, and parsing its JSON was a tenth of a small SEV-SNP point's time.
    public static func builtIn() throws -> Calibration { try builtInOnce.get() }

    private static let builtInOnce = Result { () throws -> Calibration in
        guard let url = Bundle.module.url(forResource: "calibration", withExtension: "json") else {
            throw CocomemError(.io, "built-in calibration.json is missing from the bundle")
        }
        return try load(Data(contentsOf: url), origin: "built-in calibration.json")
    }

    /// Loads a calibration file.
    public static func load(path: String) throws -> Calibration {
        try load(path: path, profile: nil)
    }

    /// Loads a calibration file with the profile `profile` applied (nil: the base values).
    /// - Throws: `.invalidScenario` for an unknown profile, naming the known ones.
    public static func load(path: String, profile: String?) throws -> Calibration {
        // 1 MiB: the built-in file is 30 KiB.
        let text = try readTextFile(path, what: "calibration file", maxBytes: 1 << 20)
        return try load(Data(text.utf8), origin: path, profile: profile)
    }

    /// The built-in calibration with `profile` applied (nil: the base values).
    public static func builtIn(profile: String?) throws -> Calibration {
        guard let profile else { return try builtIn() }
        guard let url = Bundle.module.url(forResource: "calibration", withExtension: "json") else {
            throw CocomemError(.io, "built-in calibration.json is missing from the bundle")
        }
        return try load(Data(contentsOf: url), origin: "built-in calibration.json", profile: profile)
    }

    /// The range every value of a calibration file must be in; a file
    /// outside them is refused on load, naming the key. They keep every
    /// integer cost in range (`CostTable` turns them into picoseconds) and
    /// are far outside any measured figure:
    /// - an operation's `ns` and `serial_ns`: 0 to 10^9 (one second; the
    ///   largest built-in cost is 0.25 s);
    /// - its `bytes`: 0 to 1 GiB (the largest page any operation writes);
    /// - the write rates: 0.001 to 10^6 GiB/s.
    public enum Limits {
        public static let nanoseconds: ClosedRange<Double> = 0...1e9
        public static let bytes: ClosedRange<Double> = 0...1073741824
        public static let gibPerSecond: ClosedRange<Double> = 0.001...1e6
    }

    /// Parses and validates calibration JSON; `origin` names it in errors.
    /// - Throws: `.invalidScenario` naming the key that is missing, not a
    ///   number, not finite, or outside `Limits`.
    static func load(_ data: Data, origin: String, profile: String? = nil) throws -> Calibration {
        guard var root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CocomemError(.invalidScenario, "\(origin): not a JSON object")
        }
        if let profile { root = try applyProfile(profile, to: root, origin: origin) }
        func number(_ key: String) throws -> (Double, String) {
            guard let o = root[key] as? [String: Any], let v = o["value"] as? Double,
                  let s = o["source"] as? String else {
                throw CocomemError(.invalidScenario, "\(origin): '\(key)' needs {value, source}")
            }
            try check(v, key, in: Limits.gibPerSecond, unit: "GiB/s")
            return (v, s)
        }
        func range(_ o: [String: Any], _ key: String, _ name: String, _ limits: ClosedRange<Double>, unit: String) throws -> ClosedRange<Double>? {
            guard let raw = o[key] else { return nil }
            guard let a = raw as? [Double], a.count == 2, a[0] <= a[1] else {
                throw CocomemError(.invalidScenario, "\(origin): '\(name).\(key)' must be [low, high] with low <= high")
            }
            try check(a[0], "\(name).\(key)", in: limits, unit: unit)
            try check(a[1], "\(name).\(key)", in: limits, unit: unit)
            return a[0]...a[1]
        }
        func check(_ v: Double, _ key: String, in range: ClosedRange<Double>, unit: String) throws {
            guard v.isFinite, range.contains(v) else {
                throw CocomemError(.invalidScenario, "\(origin): '\(key)' is \(v) \(unit), not a finite number between \(range.lowerBound) and \(range.upperBound) \(unit)")
            }
        }
        let (core, coreSrc) = try number("core_write_gib_per_s")
        let (shared, sharedSrc) = try number("shared_write_gib_per_s")
        guard let opsObj = root["ops"] as? [String: Any] else {
            throw CocomemError(.invalidScenario, "\(origin): missing 'ops'")
        }
        var ops: [OpCost?] = Array(repeating: nil, count: Op.allCases.count)
        for (name, v) in opsObj {
            guard let op = Op(name: name) else {
                throw CocomemError(.invalidScenario, "\(origin): unknown operation '\(name)'")
            }
            guard let o = v as? [String: Any], let ns = o["ns"] as? Double, let src = o["source"] as? String,
                  !src.isEmpty else {
                throw CocomemError(.invalidScenario, "\(origin): operation '\(name)' needs ns and a source")
            }
            let bytesValue = o["bytes"] as? Double ?? 0
            let serial = o["serial_ns"] as? Double ?? 0
            try check(ns, "ops.\(name).ns", in: Limits.nanoseconds, unit: "ns")
            try check(serial, "ops.\(name).serial_ns", in: Limits.nanoseconds, unit: "ns")
            try check(bytesValue, "ops.\(name).bytes", in: Limits.bytes, unit: "bytes")
            guard bytesValue.rounded() == bytesValue else {
                throw CocomemError(.invalidScenario, "\(origin): 'ops.\(name).bytes' is \(bytesValue), not a whole number of bytes")
            }
            let bytes = UInt64(bytesValue)
            var cost = OpCost(nanoseconds: ns, bytesWritten: bytes, serialNanoseconds: serial, source: src)
            if let w = o["write_gib_per_s"] {
                guard let w = w as? Double else {
                    throw CocomemError(.invalidScenario, "\(origin): 'ops.\(name).write_gib_per_s' is not a number")
                }
                try check(w, "ops.\(name).write_gib_per_s", in: Limits.gibPerSecond, unit: "GiB/s")
                cost.writeGiBPerSecond = w
            }
            cost.nanosecondsRange = try range(o, "ns_range", "ops.\(name)", Limits.nanoseconds, unit: "ns")
            cost.writeRange = try range(o, "write_gib_per_s_range", "ops.\(name)", Limits.gibPerSecond, unit: "GiB/s")
            ops[op.index] = cost
        }
        // Operations added after calibration files were written (issue 17) take the built-in cost
        // when a file leaves them out, so an older file still loads; every other operation is required.
        if origin != "built-in calibration.json" {
            for op in Op.addedWithDefaults where ops[op.index] == nil { ops[op.index] = try builtIn().ops[op.index] }
        }
        let missing = Op.allCases.filter { ops[$0.index] == nil }.map(\.name)
        guard missing.isEmpty else {
            throw CocomemError(.invalidScenario, "\(origin): no cost for \(missing.joined(separator: ", "))")
        }
        var c = Calibration(ops: ops.map { $0! }, coreWriteGiBPerSecond: core, sharedWriteGiBPerSecond: shared,
                            sources: ["core_write_gib_per_s": coreSrc, "shared_write_gib_per_s": sharedSrc])
        c.coreWriteRange = try range(root["core_write_gib_per_s"] as? [String: Any] ?? [:], "range", "core_write_gib_per_s", Limits.gibPerSecond, unit: "GiB/s")
        c.sharedWriteRange = try range(root["shared_write_gib_per_s"] as? [String: Any] ?? [:], "range", "shared_write_gib_per_s", Limits.gibPerSecond, unit: "GiB/s")
        c.calibratedRange = try CalibratedRange.parse(root["calibrated_range"], origin: origin)
        c.makedumpfile = try MakedumpfileCost.parse(root["makedumpfile"], origin: origin)
        c.profile = profile
        return c
    }
}

/// The calibration turned into integer picoseconds, so that a bulk charge of
/// `n` operations equals `n` single charges exactly.
public struct CostTable: Sendable {
    public let vcpuPicoseconds: [UInt64]
    public let bytes: [UInt64]
    public let serialPicoseconds: [UInt64]
    /// Shared write bandwidth in bytes per second.
    public let sharedBytesPerSecond: Double

    public init(_ c: Calibration) {
        vcpuPicoseconds = Op.allCases.map { op in
            let o = c[op]
            let psPerByte = 1e12 / ((o.writeGiBPerSecond ?? c.coreWriteGiBPerSecond) * 1073741824.0)
            return UInt64((o.nanoseconds * 1000).rounded()) + UInt64((Double(o.bytesWritten) * psPerByte).rounded())
        }
        bytes = Op.allCases.map { c[$0].bytesWritten }
        serialPicoseconds = Op.allCases.map { UInt64((c[$0].serialNanoseconds * 1000).rounded()) }
        sharedBytesPerSecond = c.sharedWriteGiBPerSecond * 1073741824.0
    }
}
