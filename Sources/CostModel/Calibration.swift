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
        // 1 MiB: the built-in file is 30 KiB.
        let text = try readTextFile(path, what: "calibration file", maxBytes: 1 << 20)
        return try load(Data(text.utf8), origin: path)
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
    static func load(_ data: Data, origin: String) throws -> Calibration {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CocomemError(.invalidScenario, "\(origin): not a JSON object")
        }
        func number(_ key: String) throws -> (Double, String) {
            guard let o = root[key] as? [String: Any], let v = o["value"] as? Double,
                  let s = o["source"] as? String else {
                throw CocomemError(.invalidScenario, "\(origin): '\(key)' needs {value, source}")
            }
            try check(v, key, in: Limits.gibPerSecond, unit: "GiB/s")
            return (v, s)
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
            ops[op.index] = OpCost(nanoseconds: ns, bytesWritten: bytes, serialNanoseconds: serial, source: src)
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
        return Calibration(ops: ops.map { $0! }, coreWriteGiBPerSecond: core, sharedWriteGiBPerSecond: shared,
                           sources: ["core_write_gib_per_s": coreSrc, "shared_write_gib_per_s": sharedSrc])
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
        let psPerByte = 1e12 / (c.coreWriteGiBPerSecond * 1073741824.0)
        vcpuPicoseconds = Op.allCases.map { op in
            let o = c[op]
            return UInt64((o.nanoseconds * 1000).rounded()) + UInt64((Double(o.bytesWritten) * psPerByte).rounded())
        }
        bytes = Op.allCases.map { c[$0].bytesWritten }
        serialPicoseconds = Op.allCases.map { UInt64((c[$0].serialNanoseconds * 1000).rounded()) }
        sharedBytesPerSecond = c.sharedWriteGiBPerSecond * 1073741824.0
    }
}
