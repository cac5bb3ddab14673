import CostModel
import GuestKernel
public import Simulation

extension EagerAcceptResult {
    /// Seconds with three decimals, from picoseconds.
    static func s(_ ps: UInt64) -> String {
        let ms = (ps + 500_000_000) / 1_000_000_000
        let f = ms % 1000
        return "\(ms / 1000)." + (f < 10 ? "00" : f < 100 ? "0" : "") + "\(f)"
    }
}

/// The report of `cocomem eager-scaling`: one row per vCPU count.
public enum EagerScalingReport {
    static func header(_ c: EagerAcceptConfig) -> String {
        let gib = { (b: UInt64) in b % (1 << 30) == 0 ? "\(b >> 30) GiB" : "\(b >> 20) MiB" }
        return "Eager acceptance (accept_memory=eager) of \(gib(c.memoryBytes)) RAM (\(gib(c.highBytes)) above 4 GiB, which TDVF leaves to the kernel); "
            + "host: \(c.host == .tdx ? "4K" : "2M") private mappings, TDX module \(c.module.rawValue) S-EPT locking; "
            + "accept_memory(): \(c.locking.rawValue); deferred struct page init \(c.deferredStructPageInit ? "on" : "off"); "
            + "guest_memfd xa_lock hold \(c.gmemLockNanoseconds) ns (assumption)\n"
    }

    /// The text table and the knee.
    /// - Complexity: O(rows).
    public static func text(config c: EagerAcceptConfig, rows: [EagerAcceptResult]) -> String {
        var s = header(c)
        let cols = ["vCPUs", "total (s)", "BSP (s)", "padata (s)", "workers", "chunks", "speedup", "bound of most blocks"]
        s += cols.joined(separator: " | ") + "\n"
        let one = rows.first { $0.vcpus == 1 }?.totalPicoseconds
        for r in rows {
            let speed = one.map { r.totalPicoseconds == 0 ? "-" : ratio(Double($0) / Double(r.totalPicoseconds)) } ?? "-"
            s += ["\(r.vcpus)", EagerAcceptResult.s(r.totalPicoseconds), EagerAcceptResult.s(r.bspPicoseconds),
                  EagerAcceptResult.s(r.padataPicoseconds), "\(r.workers)", "\(r.chunks)", speed, r.dominantBound.name].joined(separator: " | ") + "\n"
        }
        s += kneeLine(rows) + "\n"
        return s
    }

    /// A ratio with two decimals and an x.
    static func ratio(_ x: Double) -> String {
        let c = Int((x * 100).rounded())
        return "\(c / 100)." + (c % 100 < 10 ? "0" : "") + "\(c % 100)x"
    }

    static func kneeLine(_ rows: [EagerAcceptResult]) -> String {
        if let k = EagerAcceptScaling.knee(rows.map { ($0.vcpus, $0.totalPicoseconds) }), let r = rows.first(where: { $0.vcpus == k }) {
            return "knee: from \(k) vCPUs the next vCPU count shortens eager acceptance by less than 10% (most blocks bound by \(r.dominantBound.name))"
        }
        return "knee: none in this sweep (every next vCPU count listed gains 10% or more)"
    }

    /// The JSON object.
    /// - Complexity: O(rows).
    public static func json(config c: EagerAcceptConfig, rows: [EagerAcceptResult]) -> JSON {
        let knee = EagerAcceptScaling.knee(rows.map { ($0.vcpus, $0.totalPicoseconds) })
        return .object([
            ("config", .object([("memory_bytes", .uint(c.memoryBytes)), ("high_bytes", .uint(c.highBytes)),
                                ("host", .string(c.host.rawValue)), ("tdx_module", .string(c.module.rawValue)),
                                ("accept_memory_locking", .string(c.locking.rawValue)),
                                ("deferred_struct_page_init", .bool(c.deferredStructPageInit)),
                                ("gmem_lock_ns", .uint(c.gmemLockNanoseconds)), ("seed", .uint(c.seed))])),
            ("rows", .array(rows.map { r -> JSON in
                JSON.object([("vcpus", .uint(UInt64(r.vcpus))), ("total_ps", .uint(r.totalPicoseconds)), ("bsp_ps", .uint(r.bspPicoseconds)),
                         ("padata_ps", .uint(r.padataPicoseconds)), ("bsp_blocks", .uint(r.bspBlocks)), ("padata_blocks", .uint(r.padataBlocks)),
                         ("workers", .uint(UInt64(r.workers))), ("chunks", .uint(UInt64(r.chunks))),
                         ("exits_per_block", .uint(r.exitsPerBlock)),
                         ("bound_blocks", .object(EagerAcceptBound.allCases.map { b -> (String, JSON) in (b.name, JSON.uint(r.boundBlocks[b.rawValue])) })),
                         ("unaccepted_memory_lock", .object([("acquisitions", .uint(r.unacceptedLock.acquisitions)),
                                                             ("contended", .uint(r.unacceptedLock.contended)),
                                                             ("wait_ps", .uint(r.unacceptedLock.waitPicoseconds))])),
                         ("events", .uint(r.events))])
            })),
            ("knee_vcpus", knee.map { JSON.uint(UInt64($0)) } ?? JSON.null),
        ])
    }
}
