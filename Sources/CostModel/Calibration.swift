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

    /// The calibration shipped with cocomem.
    public static func builtIn() throws -> Calibration {
        guard let url = Bundle.module.url(forResource: "calibration", withExtension: "json") else {
            throw CocomemError(.io, "built-in calibration.json is missing from the bundle")
        }
        return try load(Data(contentsOf: url), origin: "built-in calibration.json")
    }

    /// Loads a calibration file.
    public static func load(path: String) throws -> Calibration {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw CocomemError(.io, "cannot read calibration file '\(path)'")
        }
        return try load(d, origin: path)
    }

    static func load(_ data: Data, origin: String) throws -> Calibration {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CocomemError(.invalidScenario, "\(origin): not a JSON object")
        }
        func number(_ key: String) throws -> (Double, String) {
            guard let o = root[key] as? [String: Any], let v = o["value"] as? Double,
                  let s = o["source"] as? String else {
                throw CocomemError(.invalidScenario, "\(origin): '\(key)' needs {value, source}")
            }
            return (v, s)
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
            let bytes = (o["bytes"] as? Double).map { UInt64($0) } ?? 0
            let serial = o["serial_ns"] as? Double ?? 0
            ops[op.index] = OpCost(nanoseconds: ns, bytesWritten: bytes, serialNanoseconds: serial, source: src)
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
