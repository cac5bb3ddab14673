import MemoryModel
@testable import TDXModule
import Testing

/// The TD dispatcher's stuck host-priority lock handling (TDX_1.5.01
/// `tdx_td_dispatcher.c`): `hp_lock_busy` set by the first refused TDCALL,
/// a TD exit with TDX_HOST_PRIORITY_BUSY_TIMEOUT when a refusal comes
/// HP_LOCK_TIMEOUT or more after it, cleared by any other result.
@Suite struct HostPriorityTimeoutTests {
    @Test func aRefusalAfterTheTimeoutTDExits() {
        let td = TrustDomain(features: TDXModuleFeatures(), vcpus: 2)
        #expect(td.hpLockTimeout == 1.0)
        #expect(!td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 5.0))   // first: busy from 5.0
        #expect(!td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 5.9))   // 0.9 s: not yet
        #expect(!td.tdcallReturned(vcpu: 1, refusedForHostPriority: true, now: 6.5))   // per vCPU
        #expect(td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 6.0))    // 1 s: TD exit
        #expect(td.hostPriorityTimeouts == 1)
        // The exit cleared hp_lock_busy: the next refusal starts over.
        #expect(!td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 7.5))
    }

    @Test func anyOtherResultClearsTheBusyState() {
        let td = TrustDomain(features: TDXModuleFeatures(), vcpus: 1)
        #expect(!td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 0))
        #expect(td.anyVCPUHostPriorityBusy)
        #expect(!td.tdcallReturned(vcpu: 0, refusedForHostPriority: false, now: 0.5))
        #expect(!td.anyVCPUHostPriorityBusy)
        #expect(!td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 2.0))
        #expect(td.hostPriorityTimeouts == 0)
    }

    /// MIN_HP_LOCK_TIMEOUT_USEC ... MAX_HP_LOCK_TIMEOUT_USEC.
    @Test func theTimeoutIsBounded() {
        let td = TrustDomain(features: TDXModuleFeatures(), vcpus: 1)
        #expect(!td.setHPLockTimeout(0.001) && !td.setHPLockTimeout(101) && td.hpLockTimeout == 1.0)
        #expect(td.setHPLockTimeout(0.01) && td.hpLockTimeout == 0.01)
        #expect(!td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 1.0))
        #expect(td.tdcallReturned(vcpu: 0, refusedForHostPriority: true, now: 1.01))
    }
}
