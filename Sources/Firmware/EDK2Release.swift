import MemoryModel

/// An edk2 stable tag as users write it (`edk2-stable202508`), mapped to the
/// firmware generation the model runs for it. Checked against
/// tianocore/edk2's history (`git tag --contains`), docs/VERSIONS.md:
/// - d1e41c620f "OvmfPkg: Introduce lazy accept in PlatformInitLib and
///   PlatformPei": edk2-stable202211, accepting on the BSP only;
/// - 451521ccbc "OvmfPkg/PlatformInitLib: Implement multi-core accept memory
///   for TDVF" (BZ4172), 26847fb6be "OvmfPkg: Introduce the
///   OvmfSevMemoryAcceptance protocol" and, after it, 0d129ef7c3 "SEV-SNP make
///   >=4GB unaccepted": edk2-stable202302, the first tag the model's `tdvf`
///   and `ovmf-snp` generations describe;
/// - b15f98e68f "OvmfPkg/IntelTdx: Fix TDVF boot failure with odd-sized
///   memory below 2816M" (PR 11525): edk2-stable202511. Earlier tags leave
///   the sub-2 MiB tail of low RAM PENDING with more than one vCPU
///   (`FirmwareConfig.tdvfAcceptsSub2MTail`), which kills the TD in PEI.
/// - 4e90b65e7b "OvmfPkg/PlatformInitLib: Add SoftReserved memory type
///   support": edk2-stable202605; earlier tags leave an E820 SoftReserved
///   range out of the map (`SoftReservedHandling`).
/// - 6c6d0a72c2 "OvmfPkg/PlatformPei: retain SoftReserved memory under
///   SEV-SNP" (PR 12774, Jul 2026): in no stable tag known here; selected
///   by `--retain-soft-reserved`.
public struct EDK2Release: Sendable, Hashable, CustomStringConvertible {
    /// The tag, `edk2-stableYYYYMM` or `edk2-stableYYYYMM.NN`.
    public let tag: String

    /// The stable tags of tianocore/edk2 from the first with unaccepted
    /// memory to the newest in the history read (edk2-stable202605).
    public static let knownTags = [
        "edk2-stable202211", "edk2-stable202302", "edk2-stable202305", "edk2-stable202308", "edk2-stable202311",
        "edk2-stable202402", "edk2-stable202405", "edk2-stable202408", "edk2-stable202408.01", "edk2-stable202411",
        "edk2-stable202502", "edk2-stable202505", "edk2-stable202508", "edk2-stable202508.01", "edk2-stable202511",
        "edk2-stable202602", "edk2-stable202605",
    ]

    public var description: String { tag }

    /// Whether the tag has b15f98e68f (the TDVF odd-size fix, edk2-stable202511).
    public var hasOddSizeBelow2816MFix: Bool { tag >= "edk2-stable202511" }

    /// The generation the model runs for this tag on TDX or on SEV-SNP.
    public func generation(tdx: Bool) -> FirmwareGeneration { tdx ? .tdvf : .ovmfSNP }

    /// Parses an edk2 stable tag.
    /// - Throws: `CocomemError(.invalidArgument)`: edk2-stable202211 (BSP-only
    ///   lazy accept, no SNP protocol) and earlier are not modelled; unknown
    ///   tags list the nearest known ones.
    /// - Complexity: O(number of known tags).
    public static func parse(_ text: String) throws -> EDK2Release {
        if knownTags.contains(text) {
            guard text != "edk2-stable202211" else {
                throw CocomemError(.invalidArgument, "firmware \(text) is not modelled: its lazy accept (d1e41c620f) accepts on the BSP only and it has no SEV-SNP acceptance protocol; multi-core accept (451521ccbc) and the protocol (26847fb6be) came in edk2-stable202302")
            }
            return EDK2Release(tag: text)
        }
        guard text.hasPrefix("edk2-stable") else {
            throw CocomemError(.invalidArgument, "firmware '\(text)' is neither a generation (\(FirmwareGeneration.allCases.map(\.rawValue).joined(separator: ", "))) nor an edk2 stable tag such as edk2-stable202508")
        }
        if text < knownTags[0] {
            throw CocomemError(.invalidArgument, "firmware '\(text)' is older than edk2-stable202211, the first edk2 release with unaccepted memory (d1e41c620f); nearest modelled: edk2-stable202302")
        }
        let below = knownTags.last { $0 < text }, above = knownTags.first { $0 > text }
        let nearest = [below, above].compactMap { $0 }.joined(separator: ", ")
        throw CocomemError(.invalidArgument, "firmware '\(text)' is not an edk2 stable tag cocomem knows; nearest known: \(nearest)")
    }
}
