/// The checker's door into a booted guest (issue 20): its kexec model
/// boots the guest as `cocomem kexec` does and then drives the running
/// kernel's kexec calls itself.
extension BootSimulation {
    /// The firmware, EFI stub, kernel boot and workload of `runKexec`,
    /// without the kexec: the result carries the running kernel.
    package func bootRunningGuest() throws -> BootResult { try boot().result }
}
