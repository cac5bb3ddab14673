import CostModel
import Firmware
import MemoryModel
import Reports
import Simulation
import Testing

@Suite struct EFITests {
    @Test func kernelFormatRoundTrips() throws {
        let map = try Q35Layout(memory: 63 << 30).efiMap(highType: .unaccepted)
        let text = map.kernelFormat()
        #expect(text.contains("[Unaccepted  |   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000100000000-0x000000103fffffff] (62464MB)"))
        #expect(try EFIMemoryMap.parseKernelFormat(text) == map)
    }
    @Test func overlapsAndMalformedLinesAreErrors() {
        #expect(throws: CocomemError.self) {
            try EFIMemoryMap.parseKernelFormat("efi: mem00: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0-0x1fffff] (2MB)\nefi: mem01: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x100000-0x2fffff] (2MB)")
        }
        #expect(throws: CocomemError.self) { try EFIMemoryMap.parseKernelFormat("efi: mem00: nonsense") }
    }
    /// process_unaccepted_memory(): unaligned head and tail accepted, small ranges whole.
    @Test func stubAcceptsUnalignedPieces() throws {
        let map = try EFIMemoryMap([EFIMemoryDescriptor(type: .conventional, start: 0, end: 0x4000_0000),
                                    EFIMemoryDescriptor(type: .unaccepted, start: 0x1_0010_0000, end: 0x1_00F0_1000),
                                    EFIMemoryDescriptor(type: .unaccepted, start: 0x2_0000_0000, end: 0x2_0030_0000)])
        let out = try AcceptTool.run(map: map, calls: [(0x1_0020_0000, 0x40_0000)], calibration: Calibration.builtIn()).json.serialized(pretty: false)
        // Head [0x100100000, 0x100200000), tail [0x100e00000, 0x100f01000), the 3 MiB range whole.
        #expect(out.contains("[4296015872,4297064448]"))
        #expect(out.contains("[8589934592,8593080320]"))
        // The call accepts units 1..3 plus the guard unit 3 -> one arch call [0x100200000, 0x100800000).
        #expect(out.contains("\"arch_accepts\":[[4297064448,4303355904]]"))
        #expect(out.contains("\"unaccepted_units\":[[4,7]]"))
    }
}
