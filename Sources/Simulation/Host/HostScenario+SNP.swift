extension HostScenario {
    /// PUBLISHED.md's snp-split-16g: a 16 GiB SEV-SNP guest on hugetlb
    /// guest_memfd (Michael Roth, linux-fsdevel 2025: 622 2M pages split
    /// and ~30 merged back; ~6 and 2 with 1G pages), as the conversions to
    /// shared its kernel makes while booting, each from the mechanism that
    /// makes it. `backing` is `hugetlb-2m` or `hugetlb-1g`. Placements
    /// marked [assumed] are not given by any source; they decide only which
    /// huge pages are hit, not how many conversions there are.
    public static func snpSplit16G(backing: String) -> String {
        """
        # snp-split-16g (PUBLISHED.md): 16 GiB SEV-SNP guest, 8 vCPUs, \(backing) guest_memfd.
        # q35 puts 2 GiB below 4 GiB and 14 GiB above (Q35Layout).
        td platform=snp vcpus=8
        slot id=1 base=0x0 pages=0x80000 backing=\(backing)
        slot id=2 base=0x100000 pages=0x380000 backing=\(backing)
        build 0x800+0x20             # SNP_LAUNCH_UPDATE: OVMF's SEC pre-validated range
        accept 0x0+0x800 linux       # OVMF pre-validates RAM below 4 GiB with 2M PSC entries
        accept 0x820+0x7f7e0 linux
        accept 0x47f000+0x1000 linux # memblock's top-down allocations at the top of RAM, accepted as allocated [assumed: 16 MiB]
        accept 0x200000+0x400 linux  # a 4 MiB unit the page allocator accepts in ZONE_NORMAL [assumed]
        # The decompressor's boot_ghcb_page: made shared, private again in sev_es_shutdown_ghcb() [assumed at 48 MiB]
        convert 0x3000+1 shared
        convert 0x3000+1 private
        # __bss_decrypted (kvmclock's hv_clock_boot), a PMD-aligned section of the kernel image [assumed at 66 MiB]
        convert 0x4200+1 shared
        # SWIOTLB: 6% of 16 GiB rounded up to a power of two = 1 GiB (SWIOTLBSizing), from
        # memblock_alloc_low() top-down below OVMF's reservations at 2 GiB - 24 MiB (Q35Layout.efiMap),
        # made shared by swiotlb_update_mem_attributes()
        convert 0x3e800+0x40000 shared
        # DMA atomic pools, 128 KiB each (kernel/dma/pool.c): ZONE_DMA, ZONE_DMA32, ZONE_NORMAL [assumed placements]
        convert 0xe00+0x20 shared
        convert 0x3c000+0x20 shared
        convert 0x200000+0x20 shared
        # DEFINE_PER_CPU_DECRYPTED variables (steal_time, apf_reason, kvm_apic_eoi), one page in each vCPU's
        # 256 KiB per-CPU unit of the first chunk [assumed unit size and place]
        convert 0x47f810+1 shared
        convert 0x47f850+1 shared
        convert 0x47f890+1 shared
        convert 0x47f8d0+1 shared
        convert 0x47f910+1 shared
        convert 0x47f950+1 shared
        convert 0x47f990+1 shared
        convert 0x47f9d0+1 shared
        # Per-vCPU GHCB pages (struct sev_es_runtime_data, memblock_alloc()) made shared in init_ghcb() [assumed place]
        convert 0x47fa00+1 shared
        convert 0x47fa02+1 shared
        convert 0x47fa04+1 shared
        convert 0x47fa06+1 shared
        convert 0x47fa08+1 shared
        convert 0x47fa0a+1 shared
        convert 0x47fa0c+1 shared
        convert 0x47fa0e+1 shared
        check
        """
    }

    /// `snpSplit16G(backing: "hugetlb-2m")`: what `cocomem host --platform snp` runs without a file.
    public static let snpSplit16G = snpSplit16G(backing: "hugetlb-2m")
}
