import CostModel
import Firmware
import MemoryModel
import Simulation

extension FuzzTarget {
    /// `ByteCount.parse`, then its printer: `parse(description)` gives the
    /// same count, and `parseGuestMemory` accepts only what its doc says.
    static func size(_ text: String) throws {
        let v = try ByteCount.parse(text)
        guard let back = try? ByteCount.parse(v.description), back == v else {
            violated("size '\(text)' = \(v.value) bytes prints as '\(v.description)', which does not parse back to it")
        }
        if let m = try? ByteCount.parseGuestMemory(text) {
            guard m == v, m.value > 0, m <= ByteCount.maximumGuestSize, m.value % 4096 == 0 else {
                violated("guest memory '\(text)' accepted as \(m.value) bytes: zero, unaligned, above 4 PiB or not the size")
            }
        }
    }

    /// The memory map as `accept --memmap` reads it, its invariants, the
    /// `efi=debug` round trip, then the EFI stub's unaccepted table on it.
    static func memmap(_ text: String) throws {
        let map = try AcceptTool.parseMap(text)
        checkMap(map, what: "memory map")
        let printed = map.kernelFormat()
        let back: EFIMemoryMap
        do { back = try EFIMemoryMap.parseKernelFormat(printed) } catch {
            violated("an accepted map prints as text its own parser refuses (\(error)):\n\(printed)")
        }
        guard back.descriptors == map.descriptors else { violated("the map changes through kernelFormat():\n\(printed)") }
        let r = try AcceptTool.run(map: map, calls: [], calibration: builtIn)
        checkStub(r, map: map)
    }

    /// The calls file as `accept --calls` reads it, run by `accept_memory()`
    /// on the map of an 8 GiB TD whose memory above 4 GiB is unaccepted.
    static func calls(_ text: String) throws {
        let calls = try AcceptTool.parseCalls(text)
        guard calls.count <= AcceptTool.maximumCalls else { violated("\(calls.count) calls accepted, above the limit") }
        for (s, z) in calls {
            let (end, o) = s.addingReportingOverflow(z)
            guard !o, end <= EFIMemoryMap.maximumAddress else { violated("call \(hex16(s)) + \(hex16(z)) passes the address limit") }
        }
        let r = try AcceptTool.run(map: callsMap, calls: calls, calibration: builtIn)
        guard r.calls.count == calls.count else { violated("\(calls.count) calls parsed, \(r.calls.count) run") }
        checkStub(r, map: callsMap)
    }

    static let builtIn: Calibration = {
        do { return try Calibration.builtIn() } catch { fatalError("the built-in calibration does not load: \(error)") }
    }()

    static let callsMap: EFIMemoryMap = {
        do { return try Q35Layout(memory: ByteCount.gib(8).value).efiMap(highType: .unaccepted) } catch { fatalError("the 8 GiB q35 map: \(error)") }
    }()

    /// What `EFIMemoryMap.init` promises: sorted, disjoint, aligned,
    /// non-empty descriptors below the address limit, not too many.
    static func checkMap(_ map: EFIMemoryMap, what: String) {
        let d = map.descriptors
        guard d.count <= EFIMemoryMap.maximumDescriptors else { violated("\(what): \(d.count) descriptors") }
        for (i, x) in d.enumerated() {
            guard x.physicalStart % 4096 == 0, x.numberOfPages > 0, x.end <= EFIMemoryMap.maximumAddress, x.end > x.physicalStart else {
                violated("\(what): descriptor \(i) at \(hex16(x.physicalStart)) of \(x.numberOfPages) pages breaks the map's rules")
            }
            if i > 0, d[i - 1].end > x.physicalStart { violated("\(what): descriptors \(i - 1) and \(i) overlap or are unsorted") }
        }
    }

    /// The stub's result: what is left unaccepted lies inside the table's
    /// units, and every accept it or a call made is page-aligned and inside the map.
    static func checkStub(_ r: AcceptTool.Result, map: EFIMemoryMap) {
        let top = map.descriptors.map(\.end).max() ?? 0
        for a in r.stubAccepts {
            guard a.start % 4096 == 0, a.end % 4096 == 0, a.start <= a.end, a.end <= top else {
                violated("the stub accepted \(a), not page-aligned or outside the map (top \(hex16(top)))")
            }
        }
        guard let table = r.table else {
            guard r.unacceptedUnits.isEmpty else { violated("units left unaccepted without a table") }
            return
        }
        let units = UInt64(table.bitmap.count)
        for u in r.unacceptedUnits {
            guard u.lowerBound < u.upperBound, u.upperBound.value <= units else {
                violated("unaccepted units \(u) outside the table's \(units) bits")
            }
        }
        for c in r.calls {
            for (s, z) in c.archAccepts {
                guard s % 4096 == 0, z % 4096 == 0, z > 0 else { violated("arch_accept_memory(\(hex16(s)), \(hex16(z))) not page-aligned") }
            }
        }
    }
}
