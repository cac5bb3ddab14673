import Firmware
import MemoryModel
public import Simulation

extension AcceptTool.Result {
    /// What `cocomem accept` says when the map has no Unaccepted descriptor.
    public static let noUnacceptedNote = "the map has no Unaccepted descriptor: the stub installs no table, so each accept_memory() call returns at once (efi_get_unaccepted_table() is NULL)"

    /// The object `cocomem accept` prints: `unaccepted_table`,
    /// `process_unaccepted_memory` (one entry per stub call, with its
    /// descriptor, `arch_accepts` and `bitmap_set` units), `stub_accepts`
    /// (all of the stub's accepts), `calls` (one entry per
    /// `accept_memory()` call, with its `arch_accepts`), `unaccepted_units`,
    /// and `note` when there is no table. Addresses and sizes in bytes.
    public var json: JSON {
        let callsJSON: [JSON] = calls.map { c in
            .object([("start", .uint(c.start)), ("size", .uint(c.size)),
                     ("arch_accepts", .array(c.archAccepts.map { .array([.uint($0.0), .uint($0.1)]) }))])
        }
        guard let table else {
            return .object([("unaccepted_table", .null), ("process_unaccepted_memory", .array([])), ("stub_accepts", .array([])),
                            ("calls", .array(callsJSON)), ("unaccepted_units", .array([])),
                            ("note", .string(Self.noUnacceptedNote))])
        }
        let tableJSON: JSON = .object([("version", .uint(1)), ("unit_size", .uint(table.unitSize)), ("phys_base", .uint(table.physBase.value)),
                                       ("size", .uint(table.size)), ("units_set", .uint(table.unitsSet))])
        let stubJSON: [JSON] = stubCalls.map { c in
            .object([("descriptor", .array([.uint(c.descriptor.start), .uint(c.descriptor.end)])),
                     ("arch_accepts", .array(c.archAccepts.map { .array([.uint($0.start), .uint($0.end)]) })),
                     ("bitmap_set", c.unitsSet.map { .array([.uint($0.lowerBound.value), .uint($0.upperBound.value)]) } ?? .null)])
        }
        return .object([("unaccepted_table", tableJSON),
                        ("process_unaccepted_memory", .array(stubJSON)),
                        ("stub_accepts", .array(stubAccepts.map { .array([.uint($0.start), .uint($0.end)]) })),
                        ("calls", .array(callsJSON)),
                        ("unaccepted_units", .array(unacceptedUnits.map { .array([.uint($0.lowerBound.value), .uint($0.upperBound.value)]) }))])
    }
}
