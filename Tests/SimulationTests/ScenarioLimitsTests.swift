import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
import Simulation
import Testing

/// Issue 15, command-line values: sizes that cannot fit the guest are
/// refused up front, and sizes that overflowed deep in the boot do not.
@Suite struct ScenarioLimitsTests {
    func boot(_ f: (inout Scenario) -> Void) throws -> BootResult {
        var s = Scenario()
        s.memory = 1 << 30
        f(&s)
        s.kernel.lazyAccept = s.lazy
        return try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
    }

    /// `--fw-partial-accept 0xfffffffffffff000` overflowed the firmware's budget (a trap): it now accepts everything.
    @Test func hugePartialAcceptAcceptsAll() throws {
        let r = try boot { $0.firmware = .tdvf2022; $0.partialAcceptBytes = 0xffff_ffff_ffff_f000 }
        #expect(r.outcome == .ok)
    }

    /// `--init-size 0xfffffffffffff000` trapped in AddressRange(start:size:); a boot allocation of 15E ran on.
    @Test func sizesLargerThanTheGuestAreRefused() throws {
        #expect { _ = try boot { $0.kernel.kernelInitBytes = 0xffff_ffff_ffff_f000 } } throws: {
            ($0 as? CocomemError)?.message.contains("kernel init size") == true
        }
        #expect { _ = try boot { $0.bootAllocationBytes = 15 << 60 } } throws: {
            ($0 as? CocomemError)?.message.contains("larger than the guest") == true
        }
        // The 256M default still boots the smallest guest.
        #expect(try boot { $0.memory = 128 << 20 }.outcome == .ok)
    }
}
