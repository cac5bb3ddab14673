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
        /// The calibration profile of the hardware and host software the
        /// figure was measured on (`calibration.json` `profiles`).
        public var profile: String
        public var published: Double
        public var model: Double
        public var unit: String
        public var tolerance = 0.20
        /// A figure published as a range (`6-35 s`): the model is within
        /// tolerance anywhere from `low·(1−tolerance)` to `high·(1+tolerance)`.
        public var publishedRange: ClosedRange<Double>? = nil
        /// The model at the two ends of every calibrated range and at the
        /// base values: the prediction's band (nil until `evaluate` fills it).
        public var band: ClosedRange<Double>? = nil
        /// Set when the figure's guest is larger than any the calibration's
        /// sources measured (`CalibratedRange`).
        public var extrapolation: String? = nil
        public var withinTolerance: Bool {
            if let r = publishedRange { return model >= r.lowerBound * (1 - tolerance) && model <= r.upperBound * (1 + tolerance) }
            return abs(model - published) <= tolerance * published
        }
    }

    /// One figure: how to compute the model's value under a calibration.
    struct Figure {
        var row: Row
        var vcpus: Int
        var memory: UInt64
        var compute: (Calibration) throws -> Double
    }

    static func bootThrowing(_ configure: (inout Scenario) throws -> Void, _ cal: Calibration) throws -> BootResult {
        var s = Scenario()
        try configure(&s)
        s.kernel.lazyAccept = s.lazy
        return try BootSimulation(scenario: s, calibration: cal).run()
    }

    static func boot(_ configure: (inout Scenario) -> Void, _ cal: Calibration) throws -> BootResult {
        var s = Scenario()
        configure(&s)
        s.kernel.lazyAccept = s.lazy
        return try BootSimulation(scenario: s, calibration: cal).run()
    }

    /// The 2022 configuration of boot-4g/boot-64g: pre-upstream TdvfPkg with
    /// a partial pre-accept by the BSP (eager: the firmware accepts all), a
    /// kernel without deferred struct page init, 1 vCPU, and the host of the
    /// day: Intel's TDX KVM of 2021-22 mapped private memory at 2M (the
    /// model's 2M host, `tdx-huge`; docs/CALIBRATION.md).
    static func tdx2022(_ mem: UInt64, lazy: Bool) -> (inout Scenario) -> Void {
        { s in
            s.platform = .tdx; s.memory = mem; s.vcpus = 1; s.lazy = lazy; s.firmware = .tdvf2022
            s.kernel.version = .v6_5; s.kernel.deferredStructPageInit = false; s.tdxHost = .tdxHuge
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

    /// Time for `vcpus` threads to accept `bytes` in 4 MiB blocks with
    /// Linux `tdx_accept_memory()` on the host model `host` (accept-90g:
    /// `.tdxHuge`, 2M private mappings).
    static func acceptTime(bytes: UInt64, vcpus: Int, host model: TDXHostModel = .tdxHuge, cal: Calibration) throws -> Double {
        let costs = CostTable(cal)
        let host = try BootSimulation.plainTDXHost(coveringBytes: (1 << 32) + bytes, costs: costs, model: model)
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

    /// The published figures of calibration/PUBLISHED.md the model covers,
    /// each with the configuration and profile it was measured on.
    static func figures() -> [Figure] {
        var f: [Figure] = []
        let tdx2022Conf = "tdx tdvf-2022 (256M partial, BSP), kernel 6.5 no deferred init, 1 vCPU, 2M host (Intel TDX KVM 2021-22)"
        for (id, gib, target) in [("boot-4g", UInt64(4), 2.5), ("boot-64g", UInt64(64), 4.0)] {
            let mem = ByteCount.gib(gib).value
            f.append(Figure(row: Row(id: id, configuration: tdx2022Conf, profile: "tdx-spr", published: target, model: 0, unit: "x eager/lazy"),
                            vcpus: 1, memory: mem) { cal in
                try boot(tdx2022(mem, lazy: false), cal).times.totalBoot / boot(tdx2022(mem, lazy: true), cal).times.totalBoot
            })
        }
        let b90 = ByteCount.gib(90).value
        for (v, conf) in [(1, "tdx, Linux tdx_accept_memory, 2M host (Intel downstream KVM, Feb 2025)"), (4, "same, 4 threads"),
                          (8, "same, 8 threads (no further scaling)")] {
            f.append(Figure(row: Row(id: "accept-90g (\(v) vCPU\(v == 1 ? "" : "s"))", configuration: conf, profile: "tdx-spr",
                                     published: v == 1 ? 60 : 40, model: 0, unit: "s"), vcpus: v, memory: b90) { cal in
                try acceptTime(bytes: b90, vcpus: v, cal: cal)
            })
        }
        // PR 1220's per-fault cost: one vCPU accepting with 4K-only private
        // mappings (mainline KVM); 64 MiB is enough for the per-2M parts to average out.
        let probe = ByteCount.mib(64).value
        f.append(Figure(row: Row(id: "dstack-4k-fault", configuration: "tdx, Linux tdx_accept_memory, 1 vCPU, 4K host (mainline KVM), idle APs",
                                 profile: "tdx-gnr", published: 8, model: 0, unit: "us/4K"), vcpus: 1, memory: probe) { cal in
            try acceptTime(bytes: probe, vcpus: 1, host: .tdx, cal: cal) / Double(probe / 4096) * 1e6
        })
        // kata-sweep (kata-containers issue 13535): lazy-accept firmware, a
        // kata guest kernel of the 6.12 line, mainline KVM (4K private
        // mappings), kata's default_vcpus = 1 (the CPU guests' vCPU count is
        // not stated). 128Gi is the upper end of "6-35 s"; from 256Gi the
        // boot exceeds kata's 45 s reconnect_timeout.
        let kataConf = "tdx edk2-stable202605 lazy, kernel 6.12, 1 vCPU (kata default_vcpus; not stated), 4K host (mainline KVM)"
        for (gib, row) in [(UInt64(128), Row(id: "kata-128g", configuration: kataConf, profile: "tdx-emr", published: 35, model: 0, unit: "s")),
                           (UInt64(256), Row(id: "kata-256g", configuration: kataConf + "; fails a 45 s timeout", profile: "tdx-emr", published: 45, model: 0, unit: "s",
                                              publishedRange: 45...Double.infinity))] {
            let mem = ByteCount.gib(gib).value
            f.append(Figure(row: row, vcpus: 1, memory: mem) { cal in
                try bootThrowing({ s in
                    s.platform = .tdx; s.memory = mem; s.vcpus = 1; s.lazy = true
                    let release = try EDK2Release.parse("edk2-stable202605")
                    s.edk2Release = release; s.firmware = release.generation(tdx: true); s.kernel.version = .v6_12; s.tdxHost = .tdx
                }, cal).times.totalBoot
            })
        }
        let snpConf = "snp ovmf-snp, kernel 6.12, 2 vCPUs (not stated in the source), 4k guest_memfd, no prefault"
        for (lazy, target) in [(true, 22.0), (false, 227.0)] {
            f.append(Figure(row: Row(id: "snp-128g \(lazy ? "lazy" : "eager")", configuration: snpConf, profile: "snp-genoa",
                                     published: target, model: 0, unit: "s"), vcpus: 2, memory: ByteCount.gib(128).value) { cal in
                try boot(snp128(lazy: lazy), cal).times.totalBoot
            })
        }
        return f
    }

    /// Evaluates every figure under `calibration` as given.
    public static func evaluate(calibration cal: Calibration) throws -> [Row] {
        try evaluate { _ in cal }
    }

    /// Evaluates every figure under the calibration `calibrationFor` gives
    /// for the figure's profile, at the base values and at both ends of the
    /// calibrated ranges (the band), and flags figures beyond the
    /// calibrated range.
    /// - Complexity: three model evaluations per figure.
    public static func evaluate(calibrationFor: (String) throws -> Calibration) throws -> [Row] {
        try figures().map { fig in
            var r = fig.row
            let cal = try calibrationFor(r.profile)
            r.model = try fig.compute(cal)
            if cal.hasRanges {
                let ends = try CostEnd.allCases.map { try fig.compute(cal.atEnd($0)) } + [r.model]
                r.band = ends.min()!...ends.max()!
            }
            r.extrapolation = cal.calibratedRange?.extrapolation(vcpus: fig.vcpus, memory: fig.memory)
            return r
        }
    }

    public static func table(_ rows: [Row]) -> String {
        var o = "id                      published    model        band                 within 20%  profile     configuration\n"
        for r in rows {
            let pub = r.publishedRange.map { $0.upperBound.isInfinite ? ">" + fmt($0.lowerBound) : fmt($0.lowerBound) + "-" + fmt($0.upperBound) } ?? fmt(r.published)
            let band = r.band.map { fmt($0.lowerBound) + "-" + fmt($0.upperBound) } ?? "-"
            o += r.id.padded(24) + (pub + " " + r.unit).padded(13) + (fmt(r.model) + " " + r.unit).padded(13) + band.padded(21)
            o += (r.withinTolerance ? "yes" : "NO").padded(12) + r.profile.padded(12) + r.configuration
            if let e = r.extrapolation { o += " [outside the calibrated range: \(e)]" }
            o += "\n"
        }
        return o
    }

    static func fmt(_ v: Double) -> String { format3(v) }
}
