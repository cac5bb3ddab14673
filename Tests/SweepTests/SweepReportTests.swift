import MemoryModel
import Simulation
import Sweep
import Testing

/// The sweep's HTML report: which plots it draws by default and how lines are named.
@Suite struct SweepReportTests {
    /// Rows of a 2 x 2 x 2 grid: platform (with the firmware it implies),
    /// memory and accept mode; boot time grows with memory.
    static func grid() -> [Row] {
        var rows: [Row] = []
        for platform in ["tdx", "snp"] {
            for gib in [4, 16] {
                for accept in ["lazy", "eager"] {
                    var r = Row()
                    r.append("key", .text("\(platform)\(gib)\(accept)"))
                    r.append("outcome", .text("ok"))
                    r.append("firmware_generation", .text(platform == "tdx" ? "tdvf" : "ovmf-snp"))
                    r.append("firmware_partial_accept", .int(256 << 20))
                    r.append("guest_memory", .int(Int64(gib) << 30))
                    r.append("guest_platform", .text(platform))
                    r.append("guest_vcpus", .int(8))
                    r.append("kernel_accept", .text(accept))
                    r.append("virtual_time_total_boot_s", .double(Double(gib) * (accept == "eager" ? 2 : 0.5)))
                    r.scenarioColumns = ["firmware_generation", "firmware_partial_accept", "guest_memory", "guest_platform", "guest_vcpus", "kernel_accept"]
                    rows.append(r)
                }
            }
        }
        return rows
    }

    @Test func defaultPlotsAreBootTimeAgainstEachNumericAxis() {
        let plots = SweepReport.defaultPlots(Self.grid())
        // guest_vcpus does not vary; the firmware follows the platform and splits no line further.
        #expect(plots == [PlotSpec(x: "guest_memory", y: "virtual_time_total_boot_s", by: ["guest_platform", "kernel_accept"])])
    }

    @Test func linesAreNamedByTheirValues() throws {
        let html = try SweepReport.html(rows: Self.grid(), plots: SweepReport.defaultPlots(Self.grid()), title: "t")
        for line in ["guest_platform=tdx, kernel_accept=lazy", "guest_platform=snp, kernel_accept=eager"] {
            #expect(html.contains(line))
        }
        #expect(html.contains("16 GiB"))
    }

    @Test func shortNamesResolveAndUnknownOnesAreErrors() throws {
        let html = try SweepReport.html(rows: Self.grid(), plots: [try PlotSpec.parse("memory, total_boot_s, accept")], title: "t")
        // `accept` is kernel_accept, the key itself, not firmware_partial_accept.
        #expect(html.contains("kernel_accept = eager"))
        #expect(throws: CocomemError.self) { try SweepReport.html(rows: Self.grid(), plots: [PlotSpec(x: "memroy", y: "total_boot_s")], title: "t") }
        #expect(throws: CocomemError.self) { try PlotSpec.parse("memory") }
        #expect(throws: CocomemError.self) { try PlotSpec.parse("memory,,x") }
    }
}

/// Sweeps run their points without filling the record over time: the rows
/// must not depend on it.
@Suite struct SweepRowsWithoutRecordTests {
    @Test(arguments: ["guest: {memory: 8G, vcpus: 4}\nkernel: {accept: lazy}\nworkload: [touch=2G, pagecache=1G]",
                      "guest: {platform: snp, memory: 6G}\nkernel: {accept: eager}",
                      "guest: {memory: 4G}\nkernel: {version: \"6.16\"}\nsteps: [{kexec: {}}]"])
    func rowsAreTheSameWithAndWithoutTheRecord(_ text: String) throws {
        var f = try ScenarioFile.parse(text)
        f.scenario.record = true
        let recorded = Row.of(try f.run(outputDirectory: ".", threads: 1), key: "k", point: 0, calibrationHash: "h")
        f.scenario.record = false
        let unrecorded = Row.of(try f.run(outputDirectory: ".", threads: 1), key: "k", point: 0, calibrationHash: "h")
        #expect(recorded == unrecorded)
        #expect(recorded.columns.count > 20)
    }
}
