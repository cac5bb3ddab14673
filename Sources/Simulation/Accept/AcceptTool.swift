import CoCoGuest
public import CostModel
public import Firmware
import Foundation
import GuestKernel
public import MemoryModel
import TDXModule

/// `cocomem accept`: the EFI stub and `accept_memory()` alone, on a given
/// memory map and a list of `accept_memory(start, size)` calls.
public struct AcceptTool {
    /// The largest memory map or calls file read: 16 MiB, room for the
    /// descriptor limit (`EFIMemoryMap.maximumDescriptors`) at any line
    /// length the kernel prints, and for as many calls.
    public static let maximumFileBytes = 16 << 20
    /// The most `accept_memory()` calls one calls file may list.
    public static let maximumCalls = 65536

    public static func parseMap(_ text: String) throws -> EFIMemoryMap {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.hasPrefix("[") || t.hasPrefix("{") { return try EFIMemoryMap.parseJSON(t) }
        return try EFIMemoryMap.parseKernelFormat(text)
    }

    public static func parseCalls(_ text: String) throws -> [(UInt64, UInt64)] {
        var out: [(UInt64, UInt64)] = []
        for (n, line) in text.splitLines().enumerated() {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty || l.hasPrefix("#") { continue }
            guard out.count < maximumCalls else {
                throw CocomemError(.invalidArgument, "calls line \(n + 1): more than \(maximumCalls) calls in one file")
            }
            let f = l.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" || $0 == "\r" })
            guard f.count == 2, let s = parseInteger(f[0]), let z = parseInteger(f[1]) else {
                throw CocomemError(.invalidArgument, "calls line \(n + 1): expected 'start size' (decimal or 0x hex): '\(l)'")
            }
            // accept_memory() computes start + size (and adds a guard unit): past the map's address space it would wrap.
            let (end, wraps) = s.addingReportingOverflow(z)
            guard !wraps, end <= EFIMemoryMap.maximumAddress else {
                throw CocomemError(.invalidArgument, "calls line \(n + 1): start + size passes \(hex16(EFIMemoryMap.maximumAddress)), the highest address a map may describe: '\(l)'")
            }
            out.append((s, z))
        }
        return out
    }

    /// One `process_unaccepted_memory()` call of `setup_e820()`.
    public struct StubCall: Sendable {
        /// The Unaccepted descriptor, as GetMemoryMap() returned it.
        public var descriptor: AddressRange
        /// The `arch_accept_memory()` ranges it made (small range, head, tail,
        /// parts outside the bitmap).
        public var archAccepts: [AddressRange]
        /// The units it set in the bitmap.
        public var unitsSet: Range<UnacceptedUnit>?
    }

    /// What the stub and the calls did.
    public struct Result: Sendable {
        /// The table the stub allocated, or nil when the map has nothing unaccepted.
        public var table: UnacceptedTable?
        /// One entry per `process_unaccepted_memory()` call, in map order.
        public var stubCalls: [StubCall] = []
        /// The stub's accepts of the unaligned heads and tails, all calls together.
        public var stubAccepts: [AddressRange] { stubCalls.flatMap(\.archAccepts) }
        /// Each `accept_memory(start, size)` call with the
        /// `arch_accept_memory()` ranges it made: one entry per call, also
        /// when there is no table (the call returns at once).
        public var calls: [(start: UInt64, size: UInt64, archAccepts: [(UInt64, UInt64)])] = []
        /// Units still set in the bitmap at the end.
        public var unacceptedUnits: [Range<UnacceptedUnit>] = []
    }

    /// Runs the stub on `m` as the firmware's map and then each call.
    /// `getMemoryMap` says how the firmware returns its map to the stub
    /// (`allocate_unaccepted_bitmap()` sizes the table from one call,
    /// `setup_e820()` walks the next, after the table's allocation).
    /// - Complexity: O(descriptors + calls + bitmap runs touched).
    public static func run(map m: EFIMemoryMap, calls: [(UInt64, UInt64)], calibration: Calibration,
                           getMemoryMap: GetMemoryMapStyle = .unmerged) throws -> Result {
        var map = m
        let costs = CostTable(calibration)
        let top = m.descriptors.map(\.end).max() ?? (1 << 32)
        let host = try BootSimulation.plainTDXHost(coveringBytes: top, costs: costs)
        let acceptor = TDXAcceptor(host: host, driver: .linux, costs: costs)
        var clock = PhaseClock(vcpus: 1)
        var result = Result()
        // The table's size depends only on the lowest and highest Unaccepted
        // byte, the same in the firmware's list and in what it returns.
        guard var table = try EFIStub.allocateUnacceptedBitmap(map: &map) else {
            // accept_memory(): efi_get_unaccepted_table() is NULL, it returns at once.
            result.calls = calls.map { ($0.0, $0.1, []) }
            return result
        }
        // The allocation changed the firmware's own map; setup_e820() walks
        // the map ExitBootServices() was called with, read after it.
        for d in map.returned(by: getMemoryMap).descriptors where d.type == .unaccepted {
            let c = EFIStub.processUnacceptedMemoryCall(d.range, table: &table, acceptor: acceptor, clock: &clock)
            result.stubCalls.append(StubCall(descriptor: d.range, archAccepts: c.accepted, unitsSet: c.unitsSet))
            if case .terminated(let why) = c.outcome { throw CocomemError(.unsupported, why) }
        }
        result.table = table
        let um = UnacceptedMemory(table: table, acceptor: acceptor, costs: costs)
        for (s, z) in calls {
            var archs: [(UInt64, UInt64)] = []
            um.onArchAccept = { a, b in archs.append((a, b)) }
            _ = um.acceptMemory(start: s, size: z, vcpu: 0, clock: &clock)
            result.calls.append((s, z, archs))
        }
        result.unacceptedUnits = um.table.bitmap.setRuns(in: um.table.allUnits)
        return result
    }
}

