import CostModel
import Foundation
import MemoryModel
import Testing

/// Issue 15, calibration files: every value is checked on load and a bad
/// one is an error naming its key (it was a trap in `CostTable`, exit 132).
@Suite struct CalibrationLimitsTests {
    static let builtInPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/CostModel/Resources/calibration.json").standardized.path

    /// The built-in file with `edit` applied, loaded from a temporary file.
    static func load(_ edit: (inout [String: Any]) -> Void) throws -> Calibration {
        var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: builtInPath))) as? [String: Any])
        edit(&root)
        let path = NSTemporaryDirectory() + "calibration-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        return try Calibration.load(path: path)
    }

    static func setOp(_ root: inout [String: Any], _ op: String, _ key: String, _ v: Any) {
        var ops = root["ops"] as! [String: Any]
        var o = ops[op] as! [String: Any]
        o[key] = v
        ops[op] = o
        root["ops"] = ops
    }

    @Test func builtInLoads() throws {
        _ = try Self.load { _ in }
    }

    @Test(arguments: [
        ("ns", -1.0), ("ns", 1e30), ("serial_ns", -5.0), ("serial_ns", 1e20), ("bytes", 1e30), ("bytes", -4096.0), ("bytes", 0.5),
    ])
    func badOperationValuesAreRefused(key: String, value: Double) throws {
        #expect { _ = try Self.load { Self.setOp(&$0, "tdx.accept.4k.success", key, value) } } throws: {
            ($0 as? CocomemError)?.message.contains("ops.tdx.accept.4k.success.\(key)") == true
        }
    }

    @Test(arguments: [0.0, -1.0, 1e300])
    func badRatesAreRefused(value: Double) throws {
        #expect { _ = try Self.load { $0["shared_write_gib_per_s"] = ["value": value, "source": "test"] } } throws: {
            ($0 as? CocomemError)?.message.contains("'shared_write_gib_per_s'") == true
        }
    }
}
