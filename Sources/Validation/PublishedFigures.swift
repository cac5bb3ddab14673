import CoCoGuest
public import CostModel
import Firmware
import GuestKernel
import MemoryModel
import Reports
import Simulation
import TDXModule

/// The published measurements of calibration/PUBLISHED.md that the model
/// reproduces from one calibration, each with the configuration (software
/// generation) it is reproduced with.
public enum PublishedFigures {
    public struct Row: Sendable {
        public var id: String
        public var configuration: String
        public var published: Double
        public var model: Double
        public var unit: String
        public var tolerance = 0.20
        public var withinTolerance: Bool { abs(model - published) <= tolerance * published }
    }

    static func boot(_ configure: (inout Scenario) -> Void, _ cal: Calibration) throws -> BootResult {
        var s = Scenario()
        configure(&s)
        s.kernel.lazyAccept = s.lazy
        return try BootSimulation(scenario: s, calibration: cal).run()
    }

    /// The 2022 configuration of boot-4g/boot-64g: pre-upstream TdvfPkg with
    /// a partial pre-accept by the BSP (eager: the firmware accepts all), a
    /// kernel without deferred struct page init, 1 vCPU, 4K host mappings.
    static func tdx2022(_ mem: UInt64, lazy: Bool) -> (inout Scenario) -> Void {
        { s in
            s.platform = .tdx; s.memory = mem; s.vcpus = 1; s.lazy = lazy; s.firmware = .tdvf2022
            s.kernel.version = .v6_5; s.kernel.deferredStructPageInit = false; s.hostMapping = .map4K
            // The v1 series of August 2021 ran on 5.14: sev_setup_arch() sized
            // SWIOTLB for SEV only, so the TD kept 64 MiB (KernelConfig.swiotlbSizedFromMemory).
            s.kernel.swiotlbSizedFromMemory = false
        }
    }

    /// snp-128g: OVMF with the acceptance protocol, a 6.12-era kernel (before
    /// the Mar 2025 zero-watermark fix), 4K guest_memfd backing. The source
    /// does not give the vCPU count; the figure is reproduced with 2 vCPUs
    /// (deferred struct page init is the part that scales with vCPUs; with
    /// 8 vCPUs the model gives ~13.5 s lazy). docs/CALIBRATION.md.
    static func snp128(lazy: Bool) -> (inout Scenario) -> Void {
        { s in
            s.platform = .snp; s.memory = ByteCount.gib(128).value; s.vcpus = 2; s.lazy = lazy; s.firmware = .ovmfSNP
            s.kernel.version = .v6_12; s.hostMapping = .map4K
        }
    }

    /// Time for `vcpus` threads to accept `bytes` in 4 MiB blocks on TDX
    /// with 4K host mappings (accept-90g).
    static func acceptTime(bytes: UInt64, vcpus: Int, cal: Calibration) throws -> Double {
        let costs = CostTable(cal)
        let host = try BootSimulation.plainTDXHost(coveringBytes: (1 << 32) + bytes, costs: costs)
        let acc = TDXAcceptor(host: host, driver: .linux, costs: costs)
        var clock = PhaseClock(vcpus: vcpus)
        let block: UInt64 = 4 << 20
        let base: UInt64 = 1 << 32
        let perVCPU = bytes / block / UInt64(vcpus)
        for v in 0..<vcpus {
            let start = base + UInt64(v) * perVCPU * block
            for i in 0..<perVCPU { _ = acc.accept(AddressRange(start: start + i * block, size: block), vcpu: v, clock: &clock) }
        }
        return clock.seconds(costs)
    }

    public static func evaluate(calibration cal: Calibration) throws -> [Row] {
        var rows: [Row] = []
        for (id, mem, target) in [("boot-4g", ByteCount.gib(4).value, 2.5), ("boot-64g", ByteCount.gib(64).value, 4.0)] {
            let lazy = try boot(tdx2022(mem, lazy: true), cal).times.totalBoot
            let eager = try boot(tdx2022(mem, lazy: false), cal).times.totalBoot
            rows.append(Row(id: id, configuration: "tdx tdvf-2022 (256M partial, BSP), kernel 6.5 no deferred init, 1 vCPU, 4k host",
                            published: target, model: eager / lazy, unit: "x eager/lazy"))
        }
        let b90 = ByteCount.gib(90).value
        rows.append(Row(id: "accept-90g (1 vCPU)", configuration: "tdx, Linux tdx_accept_memory, 4k host", published: 60,
                        model: try acceptTime(bytes: b90, vcpus: 1, cal: cal), unit: "s"))
        rows.append(Row(id: "accept-90g (4 vCPUs)", configuration: "same, 4 threads", published: 40,
                        model: try acceptTime(bytes: b90, vcpus: 4, cal: cal), unit: "s"))
        rows.append(Row(id: "accept-90g (8 vCPUs)", configuration: "same, 8 threads (no further scaling)", published: 40,
                        model: try acceptTime(bytes: b90, vcpus: 8, cal: cal), unit: "s"))
        let sl = try boot(snp128(lazy: true), cal).times.totalBoot
        let se = try boot(snp128(lazy: false), cal).times.totalBoot
        let snpConf = "snp ovmf-snp, kernel 6.12, 2 vCPUs (not stated in the source), 4k guest_memfd, no prefault"
        rows.append(Row(id: "snp-128g lazy", configuration: snpConf, published: 22, model: sl, unit: "s"))
        rows.append(Row(id: "snp-128g eager", configuration: snpConf, published: 227, model: se, unit: "s"))
        return rows
    }

    public static func table(_ rows: [Row]) -> String {
        var o = "id                      published    model        within 20%  configuration\n"
        for r in rows {
            o += r.id.padded(24) + (fmt(r.published) + " " + r.unit).padded(13) + (fmt(r.model) + " " + r.unit).padded(13)
            o += (r.withinTolerance ? "yes" : "NO").padded(12) + r.configuration + "\n"
        }
        return o
    }

    static func fmt(_ v: Double) -> String { format3(v) }
}
