import Foundation
import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
import Reports
import TDXModule

/// `cocomem accept`: the EFI stub and `accept_memory()` alone, on a given
/// memory map and a list of `accept_memory(start, size)` calls.
public struct AcceptTool {
    public static func parseMap(_ text: String) throws -> EFIMemoryMap {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.hasPrefix("[") || t.hasPrefix("{") { return try EFIMemoryMapJSON.parse(t) }
        return try EFIMemoryMap.parseKernelFormat(text)
    }

    public static func parseCalls(_ text: String) throws -> [(UInt64, UInt64)] {
        var out: [(UInt64, UInt64)] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty || l.hasPrefix("#") { continue }
            let f = l.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" })
            guard f.count == 2, let s = parseInteger(f[0]), let z = parseInteger(f[1]) else {
                throw CocomemError(.invalidArgument, "calls line \(n + 1): expected 'start size' (decimal or 0x hex): '\(l)'")
            }
            out.append((s, z))
        }
        return out
    }

    public static func run(map m: EFIMemoryMap, calls: [(UInt64, UInt64)], calibration: Calibration) throws -> JSON {
        var map = m
        let costs = CostTable(calibration)
        let top = m.descriptors.map(\.end).max() ?? (1 << 32)
        let host = try BootSimulation.plainTDXHost(coveringBytes: top, costs: costs)
        let acceptor = TDXAcceptor(host: host, driver: .linux, costs: costs)
        var clock = PhaseClock(vcpus: 1)
        guard var table = try EFIStub.allocateUnacceptedBitmap(map: &map) else {
            return .object([("unaccepted_table", .null), ("stub_accepts", .array([])), ("calls", .array([])), ("unaccepted_units", .array([]))])
        }
        var stubAccepts: [AddressRange] = []
        for d in map.descriptors where d.type == .unaccepted {
            let (acc, o) = EFIStub.processUnacceptedMemory(d.range, table: &table, acceptor: acceptor, clock: &clock)
            stubAccepts += acc
            if case .terminated(let why) = o { throw CocomemError(.unsupported, why) }
        }
        let tableJSON: JSON = .object([("version", .uint(1)), ("unit_size", .uint(table.unitSize)), ("phys_base", .uint(table.physBase.value)),
                                       ("size", .uint(table.size)), ("units_set", .uint(table.unitsSet))])
        let um = UnacceptedMemory(table: table, acceptor: acceptor, costs: costs)
        var callsJSON: [JSON] = []
        for (s, z) in calls {
            var archs: [JSON] = []
            um.onArchAccept = { a, b in archs.append(.array([.uint(a), .uint(b)])) }
            _ = um.acceptMemory(start: s, size: z, vcpu: 0, clock: &clock)
            callsJSON.append(.object([("start", .uint(s)), ("size", .uint(z)), ("arch_accepts", .array(archs))]))
        }
        let runs = um.table.bitmap.setRuns(in: um.table.allUnits).map { JSON.array([.uint($0.lowerBound.value), .uint($0.upperBound.value)]) }
        return .object([("unaccepted_table", tableJSON),
                        ("stub_accepts", .array(stubAccepts.map { .array([.uint($0.start), .uint($0.end)]) })),
                        ("calls", .array(callsJSON)), ("unaccepted_units", .array(runs))])
    }
}

/// The memory map as JSON: a list (or `{"efi_memory_map": [...]}`) of
/// `{type, start, end}` or `{type_id, start, bytes}` objects.
enum EFIMemoryMapJSON {
    static func parse(_ text: String) throws -> EFIMemoryMap {
        guard let data = text.data(using: .utf8), let any = try? JSONSerialization.jsonObject(with: data) else {
            throw CocomemError(.invalidMemoryMap, "memory map is not valid JSON")
        }
        let list = (any as? [Any]) ?? ((any as? [String: Any])?["efi_memory_map"] as? [Any])
        guard let list else { throw CocomemError(.invalidMemoryMap, "memory map JSON must be a list of descriptors") }
        var ds: [EFIMemoryDescriptor] = []
        for (i, e) in list.enumerated() {
            guard let o = e as? [String: Any] else { throw CocomemError(.invalidMemoryMap, "memory map entry \(i) is not an object") }
            func num(_ k: String) -> UInt64? {
                if let n = o[k] as? NSNumber { return n.uint64Value }
                if let s = o[k] as? String { return parseInteger(Substring(s)) }
                return nil
            }
            var type: EFIMemoryType? = nil
            if let id = num("type_id") { type = EFIMemoryType(rawValue: UInt32(truncatingIfNeeded: id)) }
            else if let n = o["type"] as? String { type = EFIMemoryType(name: n) }
            else if let id = num("type") { type = EFIMemoryType(rawValue: UInt32(truncatingIfNeeded: id)) }
            guard let type else { throw CocomemError(.invalidMemoryMap, "memory map entry \(i): unknown or missing type") }
            guard let start = num("start"), let end = num("end") ?? num("bytes").map({ start + $0 }), end > start else {
                throw CocomemError(.invalidMemoryMap, "memory map entry \(i): needs start and end (or bytes)")
            }
            guard start % 4096 == 0, end % 4096 == 0 else { throw CocomemError(.invalidMemoryMap, "memory map entry \(i): not 4 KiB aligned") }
            ds.append(EFIMemoryDescriptor(type: type, start: start, end: end))
        }
        return try EFIMemoryMap(ds)
    }
}
