public import CostModel
public import MemoryModel

/// Shared memory on the boot's SNP platform: the guest rescinding its
/// validation (`pvalidate_pages()` with validate 0) and the host making the
/// pages shared (`snp_begin_psc()` → KVM_HC_MAP_GPA_RANGE → QEMU's
/// `kvm_convert_memory()`: KVM_SET_MEMORY_ATTRIBUTES to shared, then
/// `ram_block_discard_guest_memfd_range()`, whose freed folios
/// `sev_gmem_invalidate()` returns to the hypervisor with RMPUPDATE).
extension SNPPlatform {
    /// PVALIDATE with validate 0 of the page at `gfn` of size `level`. A
    /// 2M rescind of anything but one validated 2M entry is
    /// FAIL_SIZEMISMATCH (Linux then rescinds the 512 4K pages); a 4K
    /// rescind inside a 2M entry takes the RMP size-mismatch fault, after
    /// which the host PSMASHes the entry and the rescind is retried at 4K; a
    /// page that is not validated is PVALIDATE_FAIL_NOUPDATE (CF=1), which
    /// Linux's `pvalidate_pages()` treats as a failure and terminates on.
    /// - Complexity: O(log runs).
    public func rescind(gfn: GuestFrameNumber, level: PageLevel) -> (PvalidateResult, OpCounts) {
        var c = OpCounts()
        guard level != .size1G, gfn.isAligned(to: level) else {
            c.add(level == .size2M ? .snpPvalidate2MFail : .snpPvalidate4KFail)
            return (.failInput, c)
        }
        if level == .size2M {
            let chunk = gfn.region2M.frames
            let runs = rmp.runs(in: chunk)
            if runs.count == 1, runs[0].value == .validated2M {
                rmp.assign(chunk, .assigned2M)
                c.add(.snpPvalidate2MSuccess)
                return (.success, c)
            }
            if runs.count == 1, runs[0].value == .assigned2M {
                c.add(.snpPvalidate2MNoUpdate)
                return (.noUpdate, c)
            }
            c.add(.snpPvalidate2MSizeMismatch)
            return (.failSizeMismatch, c)
        }
        switch rmp.value(at: gfn) {
        case .validated4K:
            rmp.assign(gfn.only, .assigned4K)
            c.add(.snpPvalidate4KSuccess)
            return (.success, c)
        case .validated2M, .assigned2M:
            // PSMASH keeps each page's validated bit in its 4K entry.
            for (r, v) in rmp.runs(in: gfn.region2M.frames) { rmp.assign(r, v == .validated2M ? .validated4K : .assigned4K) }
            c.add(.snpNPF4K)
            let (res, d) = rescind(gfn: gfn, level: .size4K)
            c.add(d)
            return (res, c)
        case .assigned4K, .unbacked:
            c.add(.snpPvalidate4KNoUpdate)
            return (.noUpdate, c)
        }
    }

    /// The host's side of a page-state change of `frames` to shared, one
    /// KVM_HC_MAP_GPA_RANGE exit: the attributes become shared and the
    /// guest_memfd pages are punched out, each backed 4K page's RMP entry
    /// returned with a 4K RMPUPDATE and each whole 2M entry with a 2M one
    /// (a 2M entry the range covers in part is PSMASHed first; PSMASH has no
    /// cost of its own in the calibration). The pages are then unbacked:
    /// a later private access faults a fresh page in, unvalidated.
    /// - Complexity: O(log runs + k), k runs and 2M entries in `frames`.
    public func makeShared(_ frames: Range<GuestFrameNumber>) -> OpCounts {
        var c = OpCounts()
        for (r, v) in rmp.runs(in: frames) where v.isBacked {
            if v == .assigned2M || v == .validated2M {
                var base = r.lowerBound.alignedDown(to: .size2M)
                while base < r.upperBound {
                    let chunk = base.region2M.frames
                    if r.lowerBound <= chunk.lowerBound && chunk.upperBound <= r.upperBound {
                        c.add(.snpRMPUpdate2M)
                    } else {
                        c.add(.snpRMPUpdate4K, min(r.upperBound, chunk.upperBound) - max(r.lowerBound, chunk.lowerBound))
                    }
                    base = base + PageLevel.size2M.pages
                }
            } else {
                c.add(.snpRMPUpdate4K, r.length)
            }
        }
        // What is left of a 2M entry cut at either end is 4K entries now.
        for edge in [frames.lowerBound, frames.upperBound] where !edge.isAligned(to: .size2M) {
            for (r, v) in rmp.runs(in: edge.region2M.frames) where v == .validated2M || v == .assigned2M {
                rmp.assign(r, v == .validated2M ? .validated4K : .assigned4K)
            }
        }
        rmp.assign(frames, .unbacked)
        sharedFrames.assign(frames, true)
        return c
    }

    /// Marks `frames` private again once the guest has made them so (its
    /// PSC to private and PVALIDATE, `snp_set_memory_private()`).
    public func markPrivate(_ frames: Range<GuestFrameNumber>) { sharedFrames.assign(frames, false) }

    /// Frames now shared.
    /// - Complexity: O(runs).
    public var sharedPages: UInt64 { sharedFrames.measure(in: .lowest ..< .highest) { $0 } }
}
