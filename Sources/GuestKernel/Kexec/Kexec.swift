public import MemoryModel

/// The system call that loads a kexec image.
public enum KexecSyscall: String, Sendable, CaseIterable {
    /// `kexec_file_load(2)` (`kexec -s`): the kernel parses the bzImage and
    /// places every segment itself (`kexec_add_buffer()` →
    /// `kexec_locate_mem_hole()`).
    case fileLoad = "kexec_file_load"
    /// `kexec_load(2)` (`kexec -c`): kexec-tools builds the segments and
    /// chooses their addresses from the memory map (`locate_hole()`); the
    /// kernel only checks them.
    case load = "kexec_load"
}

/// `KEXEC_TYPE_DEFAULT` (a reboot into the new kernel, `kexec -l`/`-e`) or
/// `KEXEC_TYPE_CRASH` (a kdump kernel loaded into the `crashkernel=`
/// reservation, `kexec -p`).
public enum KexecImageType: String, Sendable {
    case normal
    case crash
}

/// What a segment holds.
public enum KexecSegmentKind: String, Sendable, CaseIterable {
    case purgatory
    /// boot_params, the command line and the EFI runtime map and setup_data
    /// (kexec_file_load: one segment; kexec-tools: the real-mode/setup segment).
    case bootParams = "boot_params"
    case kernel
    case initrd
    /// kexec-tools' setup_data pieces, each its own segment placed bottom-up from 1 MiB.
    case efiSetupData = "setup_data(efi)"
    case efiRuntimeMap = "efi_runtime_map"
    case rngSeed = "setup_data(rng_seed)"
    /// The ELF core headers a crash image carries (`crash_load_segments()`).
    case elfcorehdr
}

/// One `struct kexec_segment`: `bufsz` bytes of content to be copied to
/// `[mem, mem + memsz)` at reboot.
public struct KexecSegment: Sendable, Equatable {
    public var kind: KexecSegmentKind
    public var bufsz: UInt64
    public var mem: UInt64
    public var memsz: UInt64
    public init(kind: KexecSegmentKind, bufsz: UInt64, mem: UInt64, memsz: UInt64) {
        self.kind = kind; self.bufsz = bufsz; self.mem = mem; self.memsz = memsz
    }
    public var range: AddressRange { AddressRange(start: mem, size: memsz) }
}

/// A placement request (`struct kexec_buf` / kexec-tools' `add_buffer()`
/// arguments): `memsz` bytes aligned to `align` within `[min, max]`
/// (`max` inclusive), searched from the top or from the bottom.
struct KexecBuf {
    var kind: KexecSegmentKind
    var bufsz: UInt64
    var memsz: UInt64
    var align: UInt64
    var min: UInt64
    var max: UInt64 = .max
    var topDown: Bool
}

/// The image being loaded: an x86-64 bzImage with its setup header, an
/// initrd and a command line, plus what the running kernel passes on.
/// Defaults describe a distribution kernel of the 6.x era; the setup-header
/// fields are those `bzImage64_load()` and kexec-tools read.
public struct KexecPayload: Sendable, Equatable {
    /// `setup_header.setup_sects`: real-mode setup in 512-byte sectors after
    /// the boot sector (0 means 4).
    public var setupSects: UInt64 = 39
    /// Size of the bzImage file.
    public var kernelFileBytes: UInt64 = 14 << 20
    /// `setup_header.init_size`: the memory the kernel needs from its load
    /// address to finish decompressing and start (the segment's memsz).
    public var initSize: UInt64 = 64 << 20
    /// `setup_header.kernel_alignment` (CONFIG_PHYSICAL_ALIGN, 2 MiB by default on x86-64).
    public var kernelAlignment: UInt64 = 2 << 20
    /// `setup_header.pref_address` (LOAD_PHYSICAL_ADDR: 16 MiB by default).
    public var prefAddress: UInt64 = 16 << 20
    /// Initrd size (0: none).
    public var initrdBytes: UInt64 = 64 << 20
    /// Command line length including the terminating NUL.
    public var cmdlineBytes: UInt64 = 128
    /// EFI runtime map entries the running kernel hands on
    /// (`efi_get_runtime_map_size()`: descriptors with EFI_MEMORY_RUNTIME).
    public var efiRuntimeDescriptors: UInt64 = 3
    /// CONFIG_IMA_KEXEC: boot_params carry an IMA setup_data entry.
    public var imaKexec = true
    public init() {}

    /// `(setup_sects + 1) * 512`: the real-mode part of the file.
    var kern16Size: UInt64 { ((setupSects == 0 ? 4 : setupSects) + 1) * 512 }
}

/// Why a kexec load failed, as the system call returns it.
public struct KexecLoadFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The errno name (`EADDRNOTAVAIL`, `EINVAL`, ...).
    public var errno: String
    public var message: String
    public var description: String { "\(errno): \(message)" }
}

/// A loaded kexec image (`struct kimage`): its segments in the order the
/// kernel keeps them, and what loading it cost.
public struct KexecImage: Sendable {
    public var syscall: KexecSyscall
    public var type: KexecImageType
    public var segments: [KexecSegment]
    /// Bytes `accept_memory()` accepted for segment destinations at load.
    public var acceptedAtLoad: UInt64 = 0
    /// Pages taken from the page allocator for the segments' source copies
    /// (`kimage_alloc_page()`; normal images only).
    public var sourcePages: UInt64 = 0
    /// The control page, the swap page and the indirection pages the image
    /// keeps until it is executed or unloaded (`kimage_alloc_control_pages()`,
    /// `kimage_add_entry()`); normal images only.
    public var controlPages: UInt64 = 0
    /// Pages that held the files while the image was being loaded and were
    /// freed once it was (`kernel_read_file_from_fd()`'s vmalloc buffers for
    /// kexec_file_load, kexec-tools' `slurp_file()` memory for kexec_load).
    public var loadBufferPages: UInt64 = 0
    /// Bytes the unaccepted table lost during the whole load: the
    /// destinations (`acceptedAtLoad`) and whatever the load's own
    /// allocations made `cond_accept_memory()` accept.
    public var acceptedDuringLoad: UInt64 = 0
    /// Debug lines as the kernel (`kexec_dprintk()`) and kexec-tools print them.
    public var log: [String] = []
}
