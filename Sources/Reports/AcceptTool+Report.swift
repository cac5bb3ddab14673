import Firmware
import MemoryModel
public import Simulation

extension AcceptTool.Result {
    /// The object `cocomem accept` prints: `unaccepted_table`,
    /// `stub_accepts`, `calls` (each with its `arch_accepts`) and
    /// `unaccepted_units`, addresses and sizes in bytes.
    public var json: JSON {
        guard let table else {
            return .object([("unaccepted_table", .null), ("stub_accepts", .array([])), ("calls", .array([])), ("unaccepted_units", .array([]))])
        }
        let tableJSON: JSON = .object([("version", .uint(1)), ("unit_size", .uint(table.unitSize)), ("phys_base", .uint(table.physBase.value)),
                                       ("size", .uint(table.size)), ("units_set", .uint(table.unitsSet))])
        let callsJSON: [JSON] = calls.map { c in
            .object([("start", .uint(c.start)), ("size", .uint(c.size)),
                     ("arch_accepts", .array(c.archAccepts.map { .array([.uint($0.0), .uint($0.1)]) }))])
        }
        return .object([("unaccepted_table", tableJSON),
                        ("stub_accepts", .array(stubAccepts.map { .array([.uint($0.start), .uint($0.end)]) })),
                        ("calls", .array(callsJSON)),
                        ("unaccepted_units", .array(unacceptedUnits.map { .array([.uint($0.lowerBound.value), .uint($0.upperBound.value)]) }))])
    }
}
