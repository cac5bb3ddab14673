#!/usr/bin/env bash
# Bad input must give one clear "error: ..." line and a non-zero exit, never
# a trap or a stack trace. Runs the built debug binary against each case.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug/cocomem
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0

# expect_error DESCRIPTION EXPECTED-SUBSTRING ARGS...
# Passes when the command exits non-zero without a signal (1: the model
# rejected the input; 64: a bad command line) and stderr is exactly one line,
# "error: ..." containing EXPECTED-SUBSTRING, with no trap or stack trace.
expect_error() {
    local what=$1 want=$2; shift 2
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    local lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || [ "$lines" -ne 1 ] || ! grep -q "^error: .*$want" "$tmp/err" \
        || grep -qi "fatal error\|stack dump\|backtrace" "$tmp/err"; then
        echo "FAIL: $what (exit $rc, $lines lines): $(head -c 300 "$tmp/err")"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}

# expect_output DESCRIPTION EXPECTED-REGEX ARGS...: exit 0 and stdout, with
# help's line wrapping undone (whitespace runs read as one space), matching.
expect_output() {
    local what=$1 want=$2; shift 2
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne 0 ] || ! tr -s ' \n' ' ' <"$tmp/out" | sed 's/ $//' | grep -q -- "$want"; then
        echo "FAIL: $what (exit $rc): $(head -c 300 "$tmp/out" "$tmp/err")"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}

printf 'efi: mem00: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0-0x1fffff] (2MB)\nefi: mem01: bogus\n' >"$tmp/malformed.map"
printf 'efi: mem00: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0-0x1fffff] (2MB)\nefi: mem01: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x100000-0x2fffff] (2MB)\n' >"$tmp/overlap.map"
printf '[{"type":"Conventional","start":0,"end":"0x40000000"},{"type_id":15,"start":"0x100000000","end":"0x140000000"}]\n' >"$tmp/good.json"
printf '1 2 3\n' >"$tmp/bad.calls"

expect_error "zero size" "zero" boot --memory 0
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\nconvert 0x10+1 sideways\n' >"$tmp/bad.host"
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nslot id=2 base=0x100 pages=512\n' >"$tmp/overlap.host"
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\naccept 0x1f0+0x20 4k\n' >"$tmp/outside.host"
expect_error "host scenario missing" "cannot read" host "$tmp/nonexistent.host"
expect_error "host scenario bad command" "line 4" host "$tmp/bad.host"
expect_error "host memslots overlap" "overlaps" host "$tmp/overlap.host"
expect_error "host frames outside a memslot" "not inside one memslot" host "$tmp/outside.host"
printf 'td host=tdx-huge sept-placement=diagonal\nslot id=1 base=0 pages=512\n' >"$tmp/placement.host"
expect_error "host unknown S-EPT placement" "sept-placement must be contiguous, scattered or buddy" host "$tmp/placement.host"
# Issue 18 §1: the host allocator's placement, its free-memory state, HP_LOCK_TIMEOUT, and the boot options.
printf 'td host=tdx-huge host-placement=random\nslot id=1 base=0 pages=512\n' >"$tmp/hplace.host"
expect_error "host unknown host placement" "host-placement must be contiguous, scattered or buddy" host "$tmp/hplace.host"
printf 'td host=tdx-huge host-placement=buddy host-free-4k=lots\nslot id=1 base=0 pages=512\n' >"$tmp/hfree.host"
expect_error "host host-free-4k not a count" "host-free-4k must be a page count" host "$tmp/hfree.host"
printf 'td host=tdx-huge host-free-4k=64\nslot id=1 base=0 pages=512\n' >"$tmp/hfree-contig.host"
expect_error "host host-free-4k without buddy" "host-free-4k is the buddy allocator's free-memory state: it needs host-placement=buddy" host "$tmp/hfree-contig.host"
printf 'td host=tdx-huge hp-lock-timeout=0.001\nslot id=1 base=0 pages=512\n' >"$tmp/hplt.host"
expect_error "host hp-lock-timeout below the module's minimum" "hp-lock-timeout must be seconds from 0.01 to 100" host "$tmp/hplt.host"
printf 'td host=tdx-huge hp-lock-timeout=soon\nslot id=1 base=0 pages=512\n' >"$tmp/hplt2.host"
expect_error "host hp-lock-timeout not a number" "hp-lock-timeout must be seconds" host "$tmp/hplt2.host"
printf 'td vcpus=2 host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\naccept 0x0+512 linux now\n' >"$tmp/accept-extra.host"
expect_error "host accept with a word after its driver" "accept takes GFN\\[+COUNT\\], a driver (4k, 2m or linux) and vcpu=N, got 'now'" host "$tmp/accept-extra.host"
printf 'td vcpus=2 host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\naccess 0x5 twice\n' >"$tmp/access-extra.host"
expect_error "host access with a word after its range" "access takes GFN\\[+COUNT\\] and vcpu=N, got 'twice'" host "$tmp/access-extra.host"
expect_error "boot --dpamt unknown series" "dpamt" boot --host tdx-huge --dpamt v5
expect_error "boot --dpamt on the static-PAMT host" "--dpamt v6 cannot apply: the tdx host runs static PAMT" boot --dpamt v6
expect_error "boot --dpamt on an SNP guest" "--dpamt v4 cannot apply: Dynamic PAMT is the TDX module's" boot --platform snp --dpamt v4
expect_error "boot --host-phys-bits out of range" "--host-phys-bits must be 36 to 52, got 60" boot --host tdx-huge --host-phys-bits 60
expect_error "boot --host-phys-bits not a number" "host-phys-bits" boot --host tdx-huge --host-phys-bits wide
expect_error "boot --host-phys-bits on an SNP guest" "--host-phys-bits cannot apply" boot --platform snp --host-phys-bits 46
expect_error "boot --host-placement unknown" "host-placement" boot --host tdx-huge --host-placement random
expect_error "boot --host-trace on an SNP guest without --host snp" "host-trace on an SEV-SNP guest needs --host snp" boot --platform snp --host-trace "$tmp/ht.jsonl"
expect_output "boot --host-trace on the SNP host" "Host inference: first touch seen" boot --platform snp --host snp --memory 2G --host-trace "$tmp/snp-ht.jsonl"
if [ -s "$tmp/snp-ht.jsonl" ] && grep -q '"kind":"psc-private".*"answer":"ok"' "$tmp/snp-ht.jsonl" && tail -1 "$tmp/snp-ht.jsonl" | grep -q '"summary"'; then
    pass=$((pass + 1))
else
    echo "FAIL: boot --host snp --host-trace wrote no PSC records or no summary"; fail=$((fail + 1))
fi
expect_error "boot --host-trace into a missing directory" "does not exist" boot --host-trace "$tmp/no/such/dir/ht.jsonl"
printf 'td platform=snp vcpus=1\nslot id=1 base=0 pages=512\nhostread 0x0+4\n' >"$tmp/snp-hostread.host"
expect_error "host hostread on the SNP host" "hostread" host "$tmp/snp-hostread.host"
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nhostread 0x0+4 0x8\n' >"$tmp/hostread-extra.host"
expect_error "host hostread with an extra word" "hostread takes one GFN" host "$tmp/hostread-extra.host"
expect_error "boot --host-free-4k without buddy" "--host-free-4k cannot apply: it is the buddy allocator's free-memory state" boot --host tdx-huge --host-free-4k 10
printf 'host:\n  kind: tdx-huge\n  host-phys-bits: 99\n' >"$tmp/hpb.yaml"
expect_error "scenario file host-phys-bits out of range" "'host-phys-bits' must be 36 to 52" run "$tmp/hpb.yaml"
printf 'host:\n  kind: tdx\n  dpamt: v6\n' >"$tmp/dpamt-tdx.yaml"
expect_error "scenario file dpamt on the static-PAMT host" "--dpamt v6 cannot apply" run "$tmp/dpamt-tdx.yaml"
printf 'host:\n  kind: tdx-huge\n  host-placement: diagonal\n' >"$tmp/hplace.yaml"
expect_error "scenario file unknown host-placement" "host-placement" run "$tmp/hplace.yaml"
expect_error "boot --host-free-4k too large" "--host-free-4k must be 0 to 4294967296" boot --host tdx-huge --host-placement buddy --host-free-4k 9999999999
printf 'td host=tdx-huge module-1g=yes\nslot id=1 base=0 pages=512\n' >"$tmp/module1g.host"
expect_error "host module-1g not on/off" "line 1: module-1g must be on or off" host "$tmp/module1g.host"
printf 'td platform=snp module-1g=on\nslot id=1 base=0 pages=512\n' >"$tmp/snp-module1g.host"
expect_error "snp host with module-1g" "line 1: td option 'module-1g' is for the TDX host" host "$tmp/snp-module1g.host"
expect_error "boot --tdx-module-1g on the upstream 4K host" "--tdx-module-1g cannot apply: the tdx host maps private memory at 4K only" boot --tdx-module-1g
expect_error "boot --tdx-module-1g on an SNP guest" "--tdx-module-1g cannot apply: it is a TDX module feature" boot --platform snp --tdx-module-1g
printf 'guest:\n  platform: tdx\nhost:\n  kind: tdx\n  tdx-module-1g: true\n' >"$tmp/module1g.yaml"
expect_error "scenario file tdx-module-1g on the 4K host" "--tdx-module-1g cannot apply" run "$tmp/module1g.yaml"
printf 'host:\n  kind: tdx-huge\n  tdx-module-1g: sometimes\n' >"$tmp/module1g-bad.yaml"
expect_error "scenario file tdx-module-1g not a bool" "tdx-module-1g" run "$tmp/module1g-bad.yaml"
expect_error "boot --vmpl on a TDX guest" "--vmpl 1 cannot apply: VMPLs and the SVSM are SEV-SNP's" boot --vmpl 1
expect_error "boot --vmpl 4" "VMPL 4 does not exist: SEV-SNP has VMPL0 to VMPL3" boot --platform snp --vmpl 4
expect_error "boot --vmpl -1" "VMPL -1 does not exist" boot --platform snp --vmpl=-1
expect_error "boot --vmpl two" "vmpl" boot --platform snp --vmpl two
expect_error "boot --snp-coherency-sfw-no on a TDX guest" "--snp-coherency-sfw-no cannot apply: COHERENCY_SFW_NO is an SEV-SNP CPUID bit" boot --snp-coherency-sfw-no
expect_error "boot --host snp on a TDX guest" "--host snp cannot apply: it is the SEV-SNP host model" boot --host snp
expect_error "boot --host snp with --vmpl 1" "--vmpl 1 cannot apply: the SNP host model (--host snp)" boot --platform snp --host snp --vmpl 1
expect_output "boot --host snp --swiotlb-shared makes the SWIOTLB shared" "Shared memory: 256M now shared" boot --platform snp --host snp --swiotlb-shared
expect_output "boot --no-swiotlb-shared leaves it private" "cocomem boot: tdx 4G" boot --no-swiotlb-shared
expect_output "boot --swiotlb-shared converts the pool" "Shared memory:" boot --swiotlb-shared
expect_error "boot --early-tick outside CONFIG_HZ's choices" "--early-tick must be 0, 100, 250, 300 or 1000" boot --early-tick 123
expect_output "boot --swiotlb-shared --early-tick 1000 cuts the MapGPA" "127 TDVMCALL_STATUS_RETRY" boot --swiotlb-shared --early-tick 1000
expect_output "boot --platform snp --early-decrypted shares __bss_decrypted and the GHCBs" "Shared memory: 28K now shared" boot --platform snp --early-decrypted
expect_output "boot --host snp with --snp-prefault" "pre_fault_memory.mapped" boot --platform snp --host snp --snp-prefault --memory 2G
printf 'td vcpus=1\nslot id=1 base=0 pages=512\nassign 0x0+1\n' >"$tmp/assign-tdx.host"
expect_error "assign on a TDX host" "line 3: assign is an SNP host command" host "$tmp/assign-tdx.host"
printf 'td platform=snp vcpus=1\nslot id=1 base=0 pages=512\nfinalize\nfinalize\n' >"$tmp/snp-finalize2.host"
expect_error "a second finalize on the SNP host" "line 4: a second finalize" host "$tmp/snp-finalize2.host"
printf 'td platform=snp vcpus=1\nslot id=1 base=0 pages=512\nfinalize\nbuild 0x0+1\n' >"$tmp/snp-build-late.host"
expect_error "build after finalize on the SNP host" "SNP_LAUNCH_UPDATE after SNP_LAUNCH_FINISH" host "$tmp/snp-build-late.host"
printf 'td vcpus=1\nslot id=1 base=0 pages=512\npsc-skip 0x0+1\n' >"$tmp/psc-tdx.host"
expect_error "psc-skip on a TDX host" "line 3: psc-skip is an SNP host command" host "$tmp/psc-tdx.host"
printf 'td platform=snp vcpus=1 policy=zap-first\nslot id=1 base=0 pages=512\n' >"$tmp/snp-policy.host"
expect_error "snp host with a TDX policy" "platform=snp takes policy=in-place" host "$tmp/snp-policy.host"
printf 'td platform=snp vcpus=1\nslot id=1 base=0 pages=512\npin 0x0+1\n' >"$tmp/snp-pin.host"
expect_error "snp pin without in-place" "pin needs policy=in-place" host "$tmp/snp-pin.host"
printf 'guest:\n  platform: snp\n  vmpl: 7\n' >"$tmp/vmpl-bad.yaml"
expect_error "scenario file vmpl 7" "vmpl-bad.yaml line 3: 'vmpl' must be between 0 and 3" run "$tmp/vmpl-bad.yaml"
printf 'host:\n  snp-coherency-sfw-no: often\n' >"$tmp/sfw-bad.yaml"
expect_error "scenario file snp-coherency-sfw-no not a bool" "'snp-coherency-sfw-no' must be true or false" run "$tmp/sfw-bad.yaml"
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\naccept +\n' >"$tmp/plus.host"
expect_error "host frames '+' alone (fuzzer finding: a trap)" "line 4: bad frames '+'" host "$tmp/plus.host"
expect_error "verdicts: depth out of range" "--depth must be 1...8" verdicts --depth 0
expect_error "verdicts: unknown row" "unknown row 'seed-999'" verdicts --only seed-999
expect_error "verdicts: scenarios directory missing" "--scenarios: '$tmp/no-such-dir' is not a directory" verdicts --only 004-in-place-no-fault --scenarios "$tmp/no-such-dir"
printf 'td host=tdx\nslot id=1 base=0 pages=512\nfinalize\nremove\n' >"$tmp/remove-nothing.host"
expect_error "adversarial remove without frames" "line 4: remove needs a GFN" host "$tmp/remove-nothing.host"
printf 'td host=tdx\nslot id=1 base=0 pages=512\nfinalize\nreadd 0x5+1 now\n' >"$tmp/readd-extra.host"
expect_error "adversarial readd with a stray argument" "line 4: readd takes one GFN" host "$tmp/readd-extra.host"
printf 'td host=tdx\nslot id=1 base=0 pages=512\nfinalize\nremap 0x1ff+2\n' >"$tmp/remap-outside.host"
expect_error "adversarial remap outside the memslot" "not inside one memslot" host "$tmp/remap-outside.host"
printf 'td host=tdx\nslot id=1 base=0 pages=0x100000000\nfinalize\nreadd 0x0+0x100000000\n' >"$tmp/readd-huge.host"
expect_error "adversarial readd of 16 TiB (page by page: bounded)" "line 4: readd covers at most 262144 frames (1 GiB)" host "$tmp/readd-huge.host"
# halt/wake (issue 17 §1): a vCPU out of guest mode; TDX only, one vcpu= and nothing else, state checked
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\nhalt\n' >"$tmp/halt-novcpu.host"
expect_error "halt without vcpu=" "line 4: halt needs vcpu=N" host "$tmp/halt-novcpu.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\nhalt vcpu=2\n' >"$tmp/halt-range.host"
expect_error "halt of a vCPU the TD lacks" "line 4: vcpu=2, but the TD has 2 vCPUs" host "$tmp/halt-range.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\nhalt vcpu=1 0x5\n' >"$tmp/halt-extra.host"
expect_error "halt with a range" "line 4: halt takes only vcpu=N, got '0x5'" host "$tmp/halt-extra.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\nhalt vcpu=1\nhalt vcpu=1\n' >"$tmp/halt-twice.host"
expect_error "halt of a halted vCPU" "line 5: halt vcpu=1: the vCPU is not in the guest" host "$tmp/halt-twice.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\nwake vcpu=1\n' >"$tmp/wake-running.host"
expect_error "wake of a running vCPU" "line 4: wake vcpu=1: the vCPU is not halted" host "$tmp/wake-running.host"
printf 'td platform=snp vcpus=2\nslot id=1 base=0 pages=512\nhalt vcpu=1\n' >"$tmp/halt-snp.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\nhalt vcpu=1\naccess 0x5 vcpu=1\n' >"$tmp/halt-access.host"
expect_error "a touch by a halted vCPU" "line 5: access on vcpu=1, which is halted" host "$tmp/halt-access.host"
expect_error "halt on the SNP host" "halt is a TDX host command" host "$tmp/halt-snp.host"

# contend (issue 18 §1, host priority): two vCPUs, one 2M range, the accepting vCPU not 0, TDX only
printf 'td host=tdx vcpus=1\nslot id=1 base=0 pages=512\nfinalize\ncontend 0x5+1\n' >"$tmp/contend-1vcpu.host"
expect_error "contend on a one-vCPU TD" "line 4: vcpu=1, but the TD has 1 vCPUs" host "$tmp/contend-1vcpu.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=2048\nfinalize\ncontend 0x0+1024\n' >"$tmp/contend-big.host"
expect_error "contend over more than one 2M range" "line 4: contend covers at most 512 frames" host "$tmp/contend-big.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\ncontend 0x5+1 vcpu=0\n' >"$tmp/contend-vcpu0.host"
expect_error "contend with the faulting vCPU as the acceptor" "line 4: contend's vcpu= is the vCPU inside ACCEPT" host "$tmp/contend-vcpu0.host"
printf 'td host=tdx vcpus=2\nslot id=1 base=0 pages=512\nfinalize\ncontend 0x5+1 now\n' >"$tmp/contend-extra.host"
expect_error "contend with a stray argument" "line 4: contend takes GFN" host "$tmp/contend-extra.host"
printf 'td platform=snp vcpus=2\nslot id=1 base=0 pages=512\ncontend 0x5+1\n' >"$tmp/contend-snp.host"
expect_error "contend on the SNP host" "line 3: contend is a TDX host command" host "$tmp/contend-snp.host"
# vcpu= on guest commands (issue 20): bounded by the td line's vcpus, a number, once.
printf 'td vcpus=2 host=tdx\nslot id=1 base=0 pages=512\nfinalize\naccept 0x0+512 linux vcpu=2\n' >"$tmp/vcpu-past.host"
expect_error "host vcpu= past the TD's vCPUs" "line 4: vcpu=2, but the TD has 2 vCPUs (0...1)" host "$tmp/vcpu-past.host"
printf 'td vcpus=2 host=tdx\nslot id=1 base=0 pages=512\nfinalize\naccess 0x5 vcpu=one\n' >"$tmp/vcpu-word.host"
expect_error "host vcpu= not a number" "line 4: vcpu must be a vCPU index 0...4095, got 'one'" host "$tmp/vcpu-word.host"
printf 'td vcpus=2 host=tdx\nslot id=1 base=0 pages=512\nfinalize\naccess 0x5 vcpu=-1\n' >"$tmp/vcpu-negative.host"
expect_error "host vcpu= negative" "line 4: vcpu must be a vCPU index" host "$tmp/vcpu-negative.host"
printf 'td vcpus=2 host=tdx\nslot id=1 base=0 pages=512\nfinalize\naccept 0x0+512 vcpu=0 vcpu=1\n' >"$tmp/vcpu-twice.host"
expect_error "host vcpu= given twice" "line 4: accept takes one vcpu=" host "$tmp/vcpu-twice.host"
printf 'slot id=1 base=0 pages=512\nfinalize\naccept 0x0+512 2m vcpu=9\ntd vcpus=4 host=tdx\n' >"$tmp/vcpu-td-after.host"
expect_error "host vcpu= checked against a td line that comes later" "line 3: vcpu=9, but the TD has 4 vCPUs" host "$tmp/vcpu-td-after.host"
# The SNP host (issue 18 §4): TDX-only options and commands, bad RMPADJUST, mixed platforms.
printf 'td platform=snp host=tdx-huge\nslot id=1 base=0 pages=512\n' >"$tmp/snp-tdxopt.host"
expect_error "snp host with a TDX td option" "line 1: td option 'host' is for the TDX host" host "$tmp/snp-tdxopt.host"
printf 'td platform=sev\nslot id=1 base=0 pages=512\n' >"$tmp/snp-platform.host"
expect_error "unknown host platform" "platform must be tdx or snp" host "$tmp/snp-platform.host"
printf 'td platform=snp\nslot id=1 base=0 pages=512\ninject demote-busy\n' >"$tmp/snp-inject.host"
expect_error "snp host with a TDX fault point" "line 3: inject is a TDX host command" host "$tmp/snp-inject.host"
printf 'td platform=snp\nslot id=1 base=0 pages=512\nremove 0x5+1\n' >"$tmp/snp-remove.host"
expect_error "snp host with an adversarial TDX command" "line 3: remove is a TDX host command" host "$tmp/snp-remove.host"
printf 'td host=tdx\nslot id=1 base=0 pages=512\nrmpadjust 0x0+1 vmpl=1\n' >"$tmp/tdx-rmpadjust.host"
expect_error "rmpadjust on the TDX host" "line 3: rmpadjust needs platform=snp" host "$tmp/tdx-rmpadjust.host"
printf 'td platform=snp\nslot id=1 base=0 pages=512\nrmpadjust 0x0+1 vmpl=0\n' >"$tmp/snp-vmpl.host"
expect_error "rmpadjust of VMPL0" "line 3: rmpadjust takes GFN" host "$tmp/snp-vmpl.host"
printf 'td platform=snp\nslot id=1 base=0 pages=512\nrmpadjust 0x0+1 vmpl=1 perms=7\n' >"$tmp/snp-perms.host"
expect_error "rmpadjust with an unknown key" "line 3: rmpadjust takes GFN" host "$tmp/snp-perms.host"
printf 'td platform=snp\nslot id=1 base=0 pages=512\naccept 0x1f0+0x20 linux\n' >"$tmp/snp-outside.host"
expect_error "snp host frames outside a memslot" "not inside one memslot" host "$tmp/snp-outside.host"
printf 'td platform=snp\nslot id=1 base=0 pages=512\nbuild 0x0+2\nbuild 0x1+1\n' >"$tmp/snp-build.host"
expect_error "snp launch update of an assigned page" "line 4: SNP_LAUNCH_UPDATE of pages already assigned" host "$tmp/snp-build.host"
printf 'td platform=tdx\nslot id=1 base=0 pages=512\n' >"$tmp/tdx-platform.host"
expect_error "td platform=tdx run with --platform snp" "platform=tdx on the td line, but --platform snp" host --platform snp "$tmp/tdx-platform.host"
expect_error "--policy on the snp host" "TDX host options" host --platform snp --policy zap-first
expect_error "--report on the snp host" "not available for the SNP host" host --platform snp --report "$tmp/r.html"
expect_error "bench --platform without --host-model" "add --host-model" bench --platform snp
# In-place conversion (issue 18 §2): the attributes switch against the
# policy, and the host's page commands only in place.
printf 'td host=tdx-huge policy=in-place vm-attributes=on\nslot id=1 base=0 pages=512\n' >"$tmp/inplace-vmattr.host"
expect_error "in-place with VM-wide attributes" "needs vm-attributes=off" host "$tmp/inplace-vmattr.host"
printf 'td host=tdx-huge policy=zap-first vm-attributes=off\nslot id=1 base=0 pages=512\n' >"$tmp/zapfirst-gmemattr.host"
expect_error "zap-first without VM-wide attributes" "vm-attributes=off needs policy=in-place" host "$tmp/zapfirst-gmemattr.host"
printf 'td host=tdx-huge vm-attributes=sometimes\nslot id=1 base=0 pages=512\n' >"$tmp/vmattr-bad.host"
expect_error "vm-attributes not on/off" "vm-attributes must be on or off" host "$tmp/vmattr-bad.host"
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\npin 0x5+1\n' >"$tmp/pin-not-inplace.host"
expect_error "pin without in-place" "line 4: pin needs policy=in-place" host "$tmp/pin-not-inplace.host"
printf 'td host=tdx-huge policy=in-place\nslot id=1 base=0 pages=512\nfinalize\nhostmap\n' >"$tmp/hostmap-nothing.host"
expect_error "hostmap without frames" "line 4: hostmap needs a GFN" host "$tmp/hostmap-nothing.host"
printf 'td host=tdx-huge policy=in-place\nslot id=1 base=0 pages=512\nfinalize\nunpin 0x5+1 twice\n' >"$tmp/unpin-extra.host"
expect_error "unpin with a stray argument" "line 4: unpin takes one GFN" host "$tmp/unpin-extra.host"
printf 'td host=tdx-huge policy=in-place\nslot id=1 base=0 pages=512\nfinalize\npin 0x1ff+2\n' >"$tmp/pin-outside.host"
expect_error "pin outside the memslot" "not inside one memslot" host "$tmp/pin-outside.host"
printf 'td host=tdx-huge policy=in-place\nslot id=1 base=0 pages=512\nfinalize\npin 0x5+1\n' >"$tmp/pin-ok.host"
expect_error "--policy zap-first over a scenario that pins" "need policy in-place" host "$tmp/pin-ok.host" --policy zap-first
printf 'td host=tdx-huge vm-attributes=on\nslot id=1 base=0 pages=512\n' >"$tmp/vmattr-on.host"
expect_error "--policy in-place over vm-attributes=on" "needs vm-attributes=off" host "$tmp/vmattr-on.host" --policy in-place
printf 'boot: false\nsteps:\n  - host:\n      policy: sept-first\n      commands: |\n        td host=tdx-huge policy=in-place\n        slot id=1 base=0 pages=512\n        pin 0x5\n' >"$tmp/yaml-pin.yaml"
expect_error "scenario file host step: policy sept-first over pin" "need policy in-place" run "$tmp/yaml-pin.yaml"
printf 'td host=tdx\nslot id=1 base=0 pages=512\nfinalize\nrefuse-aug 0x5+0\n' >"$tmp/refuse-zero.host"
expect_error "adversarial refuse-aug of no frames" "line 4: bad frame count in '0x5+0'" host "$tmp/refuse-zero.host"
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\ndestroy\naccept 0x0+1 4k\n' >"$tmp/after-destroy.host"
expect_error "a command after destroy" "line 5: accept after destroy (line 4)" host "$tmp/after-destroy.host"
printf 'td host=tdx-huge\nslot id=1 base=0 pages=512\nfinalize\naccept 0x0+512 4k\ndestroy\ncheck\n' >"$tmp/destroy.host"
expect_output "destroy reclaims every page" "host committed .* before, 0 after" host "$tmp/destroy.host"
printf 'td host=tdx-huge module-1g=on\nslot id=1 base=0 pages=0x40000 backing=hugetlb-1g\nfinalize\npromote 0x0+0x40000\n' >"$tmp/promote-dpamt.host"
expect_error "promote under Dynamic PAMT" "line 4: promote needs dpamt=off" host "$tmp/promote-dpamt.host"
printf 'td host=tdx-huge module-1g=on dpamt=off\nslot id=1 base=0 pages=0x40000 backing=hugetlb-1g\nfinalize\npromote 0x200+0x40000\n' >"$tmp/promote-misaligned.host"
expect_error "promote of a range that is not whole GiBs" "line 4: promote merges whole GiBs" host "$tmp/promote-misaligned.host"
expect_error "unknown host" "'kvm' is invalid for '--host <host>'. Please provide one of 'tdx', 'tdx-huge' or 'snp'" boot --host kvm
expect_error "negative size" "negative" boot --memory=-5G
expect_error "non-numeric size" "not a number" boot --memory abc
expect_error "more than 4 PiB" "4 PiB" boot --memory 5P
expect_error "zero vCPUs" "vcpus" boot --vcpus 0
expect_error "unknown platform" "'arm' is invalid for '--platform <platform>'. Please provide one of 'tdx' and 'snp'" boot --platform arm
expect_error "unknown workload" "workload" boot --workload eat=5
expect_error "unreadable memory map" "cannot read" accept --memmap "$tmp/does-not-exist"
expect_error "unreadable calibration" "cannot read" boot --calibration "$tmp/does-not-exist"
expect_error "malformed memory-map line" "line 2" accept --memmap "$tmp/malformed.map"
expect_error "overlapping map entries" "overlap" accept --memmap "$tmp/overlap.map"
expect_error "malformed calls line" "calls line 1" accept --memmap "$tmp/good.json" --calls "$tmp/bad.calls"
printf '[]' >"$tmp/empty.json"
expect_error "an empty JSON memory map (fuzzer finding)" "memory map has no entries" accept --memmap "$tmp/empty.json"
expect_error "SNP with TDX firmware" "firmware" boot --platform snp --firmware tdvf
expect_error "dump into a missing directory" "cannot write" dump --memory 512M -o "$tmp/no/such/dir/dump" -c
expect_error "dump level out of range" "dump level" dump --memory 512M -o "$tmp/x" -d 32
expect_error "dump level needing struct pages (kernel 6.11)" "struct pages" dump --memory 512M --kernel 6.11 -o "$tmp/x" -d 31
expect_error "dump level without VMCOREINFO" "VMCOREINFO" dump --memory 512M --no-vmcoreinfo -o "$tmp/x" -d 31
expect_error "unknown makedumpfile version" "makedumpfile '1.6' is not a release cocomem knows; known: 1.7.2, 1.7.7, 1.7.8, 1.7.9" dump --memory 512M --makedumpfile 1.6 --estimate
expect_error "makedumpfile release not modelled" "makedumpfile 1.7.5 is not modelled: .*nearest modelled: 1.7.2, 1.7.7" dump --memory 512M --makedumpfile 1.7.5 --estimate
expect_error "makedumpfile release newer than known" "makedumpfile '1.7.10' is not a release cocomem knows" dump --memory 512M --makedumpfile 1.7.10 --estimate
expect_error "dump with nothing to do" "nothing to do" dump --memory 512M
expect_error "two compressors" "at most one" dump --memory 512M -o "$tmp/x" -c -z
expect_error "sample of one page" "--sample 1 is not" dump --memory 512M --estimate --sample 1
expect_error "ELF dump with a compressor" "leave out -c" dump --memory 512M -E -c -o "$tmp/x"
expect_error "ELF dump with --mem-usage" "leave out -E" dump --memory 512M -E --mem-usage
expect_error "unknown THP mode" "'madvise' is invalid for '--thp <thp>'. Please provide one of 'always' and 'never'" dump --memory 512M --thp madvise --estimate
expect_error "hugetlb pool not in 2 MiB pages" "2 MiB pages" boot --memory 1G --workload hugetlb=3M
expect_error "hotplug DIMM not whole memory blocks" "positive multiple of 128M" boot --hotplug 100M
expect_error "hotplug of an unknown device" "is not dimm or virtio-mem" boot --hotplug 1G:nvdimm
expect_error "virtio-mem unplug not whole MAX_ORDER blocks" "positive multiple of 4M" boot --workload unplug=6M:virtio-mem
expect_error "hotplug size not a size" "hotplug=lots.: size .lots. is not a number" boot --hotplug lots
expect_error "hotplug of nothing" "positive multiple" boot --hotplug 0
expect_error "unknown hotplug series" "hotplug-accept" boot --hotplug 1G --hotplug-accept linux-next
expect_error "--uhp without a hot-plug window" "--uhp cannot apply" boot --uhp
expect_error "uhp kernel without a UHP firmware" "add --uhp" boot --hotplug 1G --hotplug-accept uhp
expect_error "--soft-reserved on TDX" "cannot apply: TDVF builds its memory map from the TD HOB" boot --memory 8G --soft-reserved 1G
expect_error "--soft-reserved not 2 MiB granular" "must be a multiple of 2 MiB" boot --platform snp --memory 8G --soft-reserved 3M
expect_error "--soft-reserved as large as high RAM" "smaller than the RAM above 4 GiB" boot --platform snp --memory 8G --soft-reserved 6G
expect_error "--soft-reserved bad size" "lots" boot --platform snp --memory 8G --soft-reserved lots
expect_error "--retain-soft-reserved without a range" "--retain-soft-reserved cannot apply: there is no SoftReserved range" boot --platform snp --memory 8G --retain-soft-reserved
expect_error "--retain-soft-reserved on a tag without SoftReserved support" "first in edk2-stable202605" boot --platform snp --memory 8G --soft-reserved 1G --retain-soft-reserved --firmware edk2-stable202511
expect_error "--slub-order above MAX_PAGE_ORDER" "--slub-order 11 is above 10" dump --memory 512M --slub-order 11 --estimate
expect_error "--slub-order on a kernel before 6.15" "kernel 6.12 is older" dump --memory 512M --kernel 6.12 --slub-order 1 -d 31 --estimate
expect_error "--slub-order with --input" "--slub-order lays out a simulated guest" dump --input /nonexistent --slub-order 1 -o "$tmp/x"
expect_error "dump of a guest with hot-plugged memory" "dump with hotplug= or unplug= phases is not modelled" dump --hotplug 1G --estimate
expect_error "kexec of a guest with hot-plugged memory" "kexec with hotplug= or unplug= phases is not modelled" kexec --hotplug 1G
expect_error "hotplug in the next kernel's workload" "next kernel's workload are not modelled" kexec --next-workload hotplug=1G
printf 'kernel:\n  hotplug-accept: maybe\n' >"$tmp/hp.yaml"
expect_error "run: a bad hotplug-accept" "line 2: 'hotplug-accept'" run "$tmp/hp.yaml"
printf 'workload: [hotplug=1G:floppy]\n' >"$tmp/hp2.yaml"
expect_error "run: a bad hotplug device" "line 1:" run "$tmp/hp2.yaml"
expect_error "sample while writing" "--sample applies to --estimate" dump --memory 512M -o "$tmp/x" --sample 64
printf 'this is not an ELF vmcore, only text that is long enough to get past the size check.\n' >"$tmp/notelf"
expect_error "convert a file that is not ELF" "no ELF magic" dump --input "$tmp/notelf" -o "$tmp/x" -c
expect_error "convert a missing file" "cannot read" dump --input "$tmp/does-not-exist" -o "$tmp/x"
"$bin" dump --memory 256M --kernel 6.16 --elf "$tmp/small.vmcore" >/dev/null 2>&1
head -c 5000 "$tmp/small.vmcore" >"$tmp/trunc.vmcore"
expect_error "convert a truncated vmcore" "truncated" dump --input "$tmp/trunc.vmcore" -o "$tmp/x" -c
"$bin" dump --memory 256M --kernel 6.16 --no-vmcoreinfo --elf "$tmp/noinfo.vmcore" >/dev/null 2>&1
expect_error "convert without VMCOREINFO at a level needing struct pages" "this file has none" dump --input "$tmp/noinfo.vmcore" -o "$tmp/x" -d 31
# makedumpfile's command line for a conversion is run without ArgumentParser (`DumpConversion`,
# docs/PERFORMANCE.md session 14); the same line spelt `--input=FILE`, which only ArgumentParser takes,
# must give the same stdout, stderr, exit code and output bytes, errors included.
same_as_parsed() {
    local what=$1; shift
    local fast=() parsed=() a prev=
    for a in "$@"; do
        fast+=("${a//@OUT@/$tmp/fast.out}")
        if [ "$prev" = "--input" ]; then unset 'parsed[${#parsed[@]}-1]'; parsed+=("--input=$a"); else parsed+=("${a//@OUT@/$tmp/parsed.out}"); fi
        prev=$a
    done
    "$bin" "${fast[@]}" >"$tmp/fast.stdout" 2>"$tmp/fast.stderr"; local rf=$?
    "$bin" "${parsed[@]}" >"$tmp/parsed.stdout" 2>"$tmp/parsed.stderr"; local rp=$?
    sed -i "s#$tmp/fast.out#@OUT@#g" "$tmp/fast.stdout" "$tmp/fast.stderr"
    sed -i "s#$tmp/parsed.out#@OUT@#g" "$tmp/parsed.stdout" "$tmp/parsed.stderr"
    local ef=no ep=no
    [ -e "$tmp/fast.out" ] && ef=yes
    [ -e "$tmp/parsed.out" ] && ep=yes
    if [ "$rf" -ne "$rp" ] || [ "$ef" != "$ep" ] || ! cmp -s "$tmp/fast.stdout" "$tmp/parsed.stdout" \
        || ! cmp -s "$tmp/fast.stderr" "$tmp/parsed.stderr" || { [ "$ef" = yes ] && ! cmp -s "$tmp/fast.out" "$tmp/parsed.out"; }; then
        echo "FAIL: makedumpfile's line, $what: exit $rf against $rp; $(head -c 200 "$tmp/fast.stderr") / $(head -c 200 "$tmp/parsed.stderr")"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
    rm -f "$tmp/fast.out" "$tmp/parsed.out"
}
same_as_parsed "-l -d 31" dump --input "$tmp/small.vmcore" -l -d 31 -o @OUT@
same_as_parsed "-c, 1.7.2" dump --input "$tmp/small.vmcore" --makedumpfile 1.7.2 -c -d 31 -o @OUT@
same_as_parsed "-E -d 31" dump --input "$tmp/small.vmcore" -E -d 31 -o @OUT@
same_as_parsed "defaults" dump --input "$tmp/small.vmcore" -o @OUT@
same_as_parsed "-p, one thread, -f" dump --input "$tmp/small.vmcore" --num-threads 1 -p -f -d 17 -o @OUT@
same_as_parsed "-z, --output, --force" dump --input "$tmp/small.vmcore" -z --output @OUT@ --force
same_as_parsed "an unknown makedumpfile release" dump --input "$tmp/small.vmcore" --makedumpfile 9.9 -o @OUT@
same_as_parsed "level 32" dump --input "$tmp/small.vmcore" -d 32 -o @OUT@
same_as_parsed "no threads" dump --input "$tmp/small.vmcore" --num-threads 0 -l -o @OUT@
same_as_parsed "two compressors" dump --input "$tmp/small.vmcore" -l -c -o @OUT@
same_as_parsed "a missing input" dump --input "$tmp/does-not-exist" -o @OUT@
same_as_parsed "a truncated input" dump --input "$tmp/trunc.vmcore" -l -o @OUT@
same_as_parsed "no VMCOREINFO at -d 31" dump --input "$tmp/noinfo.vmcore" -d 31 -o @OUT@
same_as_parsed "the output is the input" dump --input "$tmp/small.vmcore" -o "$tmp/small.vmcore"
touch "$tmp/fast.out" "$tmp/parsed.out"
same_as_parsed "an existing output without -f" dump --input "$tmp/small.vmcore" -o @OUT@
expect_error "--elf from an ELF input" "an input file is one already" dump --input "$tmp/small.vmcore" --elf "$tmp/y"
expect_error "mem-usage of a vmcore file" "running guest" dump --input "$tmp/small.vmcore" --mem-usage
expect_error "a 123-byte vmcore zero-filled to 1 TiB (fuzzer finding)" "more than the 16777216 a 123-byte file may" \
    dump --input Tests/Fixtures/fuzz-regressions/elf/zero-filled-1tib.vmcore -o "$tmp/x" -d 1
# A 225-byte vmcore whose one PT_LOAD stores 100 bytes and is zero-filled to 64 GiB (2^24 pages, the
# most a small file may describe): makedumpfile's exclude_nodata_pages() leaves the unstored pages out of
# the 2nd bitmap, so no level reads or writes them. Before, each was read and zero-checked: over 120 s
# (killed) at -d 0, -d 1 and --estimate in a debug build; now about a second, with a 4 MB output (its bitmaps).
for args in "-d 0" "-d 1" "-d 1 --estimate" "-d 1 --makedumpfile 1.7.2"; do
    rm -f "$tmp/zt"
    # shellcheck disable=SC2086
    if timeout 30 "$bin" dump --input Fuzz/corpus/elf/zero-tail-64gib.vmcore -o "$tmp/zt" $args >"$tmp/out" 2>"$tmp/err" \
        && grep -q "Original pages  : 0x0000000001000000" "$tmp/out" && { [ ! -e "$tmp/zt" ] || [ "$(stat -c %s "$tmp/zt")" -lt 5000000 ]; }; then
        pass=$((pass + 1))
    else
        echo "FAIL: a vmcore zero-filled to 64 GiB, $args (exit $?): $(head -c 300 "$tmp/err")"; fail=$((fail + 1))
    fi
done
expect_error "unknown kexec syscall" "'kexec2' is invalid for '--syscall <syscall>'. Please provide one of 'kexec_file_load' and 'kexec_load'" kexec --memory 1G --syscall kexec2
expect_error "kernel alignment not a power of two" "power of two" kexec --memory 1G --kernel-alignment 3M
expect_error "unknown next kernel" "kernel '5.4' is older than 6.5, the first release with unaccepted memory support (CONFIG_UNACCEPTED_MEMORY); nearest known: 6.5, 6.6" kexec --memory 1G --next-kernel 5.4
expect_error "negative initrd" "negative" kexec --memory 1G --initrd=-1M

# Every option enum lists its values in the error, from the type.
expect_error "unknown kernel" "kernel '6.1' is older than 6.5.*nearest known: 6.5, 6.6" boot --kernel 6.1
expect_error "kernel just before unaccepted memory" "kernel '6.4' is older than 6.5, the first release with unaccepted memory support.*nearest known: 6.5, 6.6" boot --kernel 6.4
expect_error "kernel point release not a number" "kernel '6.12.x' is not a release: write a mainline release such as 6.12 or a stable point release such as 6.12.30" boot --kernel 6.12.x
expect_error "kernel newer than the table" "kernel '99.1' is newer than the newest release the version table knows; nearest known: 7.0, 7.1" boot --kernel 99.1
expect_error "kernel with a leading v" "kernel 'v6.12.30' starts with 'v'.*(6.12.30)" boot --kernel v6.12.30
expect_error "kernel with a distribution suffix" "kernel '6.8.0-45-generic' has a local version, release-candidate or distribution suffix" boot --kernel 6.8.0-45-generic
expect_error "kernel with four parts" "kernel '6.12.30.1' is not a release" boot --kernel 6.12.30.1
expect_error "kernel 6.20 does not exist" "kernel '6.20' is not a Linux release; nearest known: 6.19, 7.0" boot --kernel 6.20
expect_error "empty kernel" "kernel '' is not a release" boot --kernel ""
expect_error "unknown accept mode" "'sometimes' is invalid for '--accept <accept>'. Please provide one of 'lazy' and 'eager'" boot --accept sometimes
expect_error "unknown loader" "'grub' is invalid for '--loader <loader>'. Please provide one of 'efistub' and 'grub-ebs'" boot --loader grub
expect_error "unknown deferred-init" "'yes' is invalid for '--deferred-init <deferred-init>'. Please provide one of 'on' and 'off'" boot --deferred-init yes
expect_error "unknown gmem backing" "'thp' is invalid for '--gmem <gmem>'. Please provide one of 'hugetlb-1g', 'hugetlb-2m' or 'buddy'" boot --gmem thp
expect_error "unknown SNP host mapping" "'1g' is invalid for '--host-mapping <host-mapping>'. Please provide one of '4k' and '2m'" boot --platform snp --host-mapping 1g
# Options that cannot apply to the guest are errors, not silently ignored (exit 1).
expect_error "TDX host on SNP" "--host tdx-huge cannot apply" boot --platform snp --host tdx-huge
expect_error "TDX host on SNP names the SNP host" "runs on the SEV-SNP host model with --host snp" boot --platform snp --host tdx-huge
expect_error "gmem on SNP" "--gmem hugetlb-1g cannot apply" boot --platform snp --gmem hugetlb-1g
expect_error "SNP host mapping on TDX" "--host-mapping 2m cannot apply" boot --host-mapping 2m
expect_error "partial accept with tdvf" "--fw-partial-accept 512M cannot apply" boot --fw-partial-accept 512M
expect_error "partial accept with an eager tdvf-2022" "--fw-partial-accept 512M cannot apply: with --accept eager, tdvf-2022 accepts all memory itself" \
    boot --firmware tdvf-2022 --accept eager --fw-partial-accept 512M
printf 'firmware: {generation: tdvf-2022, partial-accept: 1G}\nkernel: {accept: eager}\n' >"$tmp/partial-eager.yaml"
expect_error "run: partial accept with an eager tdvf-2022" "partial-eager.yaml line 1: --fw-partial-accept 1G cannot apply: with --accept eager" run "$tmp/partial-eager.yaml"
expect_error "SNP prefault on TDX" "--snp-prefault cannot apply" kexec --snp-prefault
expect_error "SNP firmware protocol on TDX" "--snp-firmware-without-protocol cannot apply" dump --snp-firmware-without-protocol --estimate
expect_error "stub protocol call on TDX" "--no-acceptance-protocol-call cannot apply" boot --no-acceptance-protocol-call
expect_error "unknown firmware" "firmware 'seabios' is neither a generation (tdvf, tdvf-2022, ovmf-snp) nor an edk2 stable tag such as edk2-stable202508" boot --firmware seabios
expect_error "edk2 tag with BSP-only lazy accept" "firmware edk2-stable202211 is not modelled: .*came in edk2-stable202302" boot --firmware edk2-stable202211
expect_error "edk2 tag before unaccepted memory" "firmware 'edk2-stable202208' is older than edk2-stable202211" boot --firmware edk2-stable202208
expect_error "edk2 tag newer than known" "firmware 'edk2-stable202608' is not an edk2 stable tag cocomem knows; nearest known: edk2-stable202605" boot --firmware edk2-stable202608
expect_error "edk2 tag that does not exist" "nearest known: edk2-stable202508, edk2-stable202508.01" boot --firmware edk2-stable202508.00
expect_error "edk2 tag in a scenario file" "line 2: 'generation': firmware 'edk2-stable2025' is not an edk2 stable tag" run /dev/stdin <<<$'firmware:\n  generation: edk2-stable2025'
expect_error "unknown precheck" "'yes' is invalid for '--precheck <precheck>'. Please provide one of 'on' and 'off'" host --precheck yes
expect_error "unknown accept level" "'always' is invalid for '--accept-level <accept-level>'. Please provide one of 'inhibit', 'per-fault' or 'none'" host --accept-level always
expect_error "unknown conversion policy" "'random' is invalid for '--policy <policy>'. Please provide one of 'wip-hugetlb', 'zap-first', 'sept-first', 'multi-folio' or 'in-place'" host --policy random
expect_error "kernel in the wrong command" "kernel '4.19' is older than 6.5" kexec --memory 1G --kernel 4.19
expect_error "bench --host is now --host-model" "Unknown option '--host'" bench --host 1T
expect_error "bench --recording with a bad workload" "unknown workload" bench --recording bogus=1G --sizes 4G
expect_error "bench --recording with a bad size" "" bench --recording touch=1G --sizes 4X
expect_error "unknown option" "Unknown option '--bogus'" boot --bogus
expect_error "missing required option" "Missing expected argument '--memmap <memmap>'" accept
expect_error "non-numeric vCPUs" "'many' is invalid for '--vcpus <vcpus>'" boot --vcpus many
expect_output "version" "^[0-9][0-9]*\\.[0-9][0-9]*\\.[0-9][0-9]*$" --version
expect_output "help names the kernel releases" "6.5 to 7.1 (mainline, x.y = x.y.0) or a stable point release such as 6.12.30 (docs/VERSIONS.md) (default: 7.0)" boot --help
expect_output "help lists the makedumpfile releases" "filter: 1.7.2, 1.7.7, 1.7.8, 1.7.9 or dev (the development branch after 1.7.9: f50c015 reads Linux 7.1.s page.compound_info); 1.7.8 and later exclude unaccepted blocks under -d 16; docs/VERSIONS.md (default: 1.7.8)" dump --help

# cocomem run: a bad scenario file is one error line naming the file, the line and the key.
printf 'guest:\n  platform: tdx\n  memroy: 4G\n' >"$tmp/unknown-key.yaml"
expect_error "run: unknown key" "unknown-key.yaml line 3: unknown key 'memroy' under 'guest' (expected: platform, memory, vcpus, numa, sockets, vmpl)" run "$tmp/unknown-key.yaml"
printf 'guest:\n  vcpus: eight\n' >"$tmp/wrong-type.yaml"
expect_error "run: wrong type" "line 2: 'vcpus' must be an integer, got 'eight'" run "$tmp/wrong-type.yaml"
printf 'kernel:\n  version: "6.1"\n' >"$tmp/bad-enum.yaml"
expect_error "run: bad enum" "line 2: 'version': kernel '6.1' is older than 6.5.*nearest known: 6.5, 6.6" run "$tmp/bad-enum.yaml"
printf 'kernel:\n  version: 6.12.x\n' >"$tmp/bad-kernel.yaml"
expect_error "run: kernel not a release" "line 2: 'version': kernel '6.12.x' is not a release" run "$tmp/bad-kernel.yaml"
# The sysctls and THP setting of issue 16: the kernel's sysctl bounds, on the command line and in a file.
expect_error "watermark_scale_factor below the sysctl's range" "vm.watermark_scale_factor 0 is out of the sysctl's range 1 to 3000" boot --watermark-scale-factor 0
expect_error "watermark_scale_factor above the sysctl's range" "vm.watermark_scale_factor 3001 is out of the sysctl's range 1 to 3000" boot --watermark-scale-factor 3001
expect_error "min_free_kbytes above INT_MAX" "vm.min_free_kbytes 2147483648 is out of the sysctl's range 0 to 2147483647" boot --min-free-kbytes 2147483648
expect_error "min_free_kbytes negative" "min-free-kbytes" boot --min-free-kbytes -5
expect_error "min_free_kbytes not a number" "min-free-kbytes" boot --min-free-kbytes lots
expect_error "transparent_hugepage not a mode" "transparent-hugepage" boot --transparent-hugepage sometimes
expect_error "dump THP folios with THP off" "--thp always lays anonymous memory out in transparent huge pages" dump --memory 1G --estimate --thp always --transparent-hugepage never
expect_error "--meminfo with --zoneinfo" "--meminfo and --zoneinfo each print one file" boot --meminfo --zoneinfo
expect_error "--dmesg with --meminfo" "--dmesg prints the boot log alone" boot --dmesg --meminfo
expect_error "kexec --dmesg without a next kernel" "no next kernel booted" kexec --memory 1G --dmesg --load-only
expect_error "accept: unknown --get-memory-map" "get-memory-map" accept --memmap /dev/null --get-memory-map efi
printf 'hello\nworld\n' >"$tmp/nothing.log"
printf '\xff\xfe\x00bad' >"$tmp/binary.log"
expect_error "compare: missing log" "No such file" compare "$tmp/none.log"
expect_error "compare: directory as log" "" compare "$tmp"
expect_error "compare: nothing recognisable" "no kernel line compare can use" compare "$tmp/nothing.log"
expect_error "compare: not text" "" compare "$tmp/binary.log"
expect_error "compare: missing meminfo" "" compare Tests/Fixtures/dmesg/tdx-linux-1.log --meminfo "$tmp/none.meminfo"
expect_output "compare: partial log says what was missing" "not in the log (model defaults used)" compare Tests/Fixtures/dmesg/tdx-tools-524.log
printf 'BIOS-e820: [mem 0x0000000000000000-0x0000000fffffffff] usable\nsmp: Brought up 1 node, 100000 CPUs\n' >"$tmp/manycpus.log"
printf '[    0.000000] BIOS-e820: [mem 0x0000000100000000-0x0000000100000bff] usable\n' >"$tmp/unaligned.log"
expect_output "compare: more vCPUs than the model takes" "more than the model's 4096" compare "$tmp/manycpus.log"
expect_output "compare: RAM ending mid-page" "memory 2097156K" compare "$tmp/unaligned.log"
expect_output "--zoneinfo prints the five zones" "Node 0, zone DMA pages free .* Node 0, zone Device pages free 0" boot --memory 1G --zoneinfo
printf 'kernel:\n  watermark-scale-factor: 5000\n' >"$tmp/wsf.yaml"
expect_error "run: watermark_scale_factor out of range" "vm.watermark_scale_factor 5000 is out of the sysctl's range" run "$tmp/wsf.yaml"
printf 'kernel:\n  min-free-kbytes: -1\n' >"$tmp/mfk.yaml"
expect_error "run: min_free_kbytes negative" "line 2: 'min-free-kbytes' must be a non-negative integer, got '-1'" run "$tmp/mfk.yaml"
printf 'kernel:\n  transparent-hugepage: sometimes\n' >"$tmp/thp.yaml"
expect_error "run: THP mode unknown" "line 2: 'transparent-hugepage' must be one of always, madvise, never, got 'sometimes'" run "$tmp/thp.yaml"
printf 'guest:\n  memory: 4Q\n' >"$tmp/bad-size.yaml"
expect_error "run: bad size" "line 2: 'memory': size '4Q'" run "$tmp/bad-size.yaml"
: >"$tmp/empty.yaml"
expect_error "run: empty file" "empty.yaml: the file is empty" run "$tmp/empty.yaml"
printf -- '- boot\n' >"$tmp/list.yaml"
expect_error "run: top level not a mapping" "line 1: the top level must be a mapping" run "$tmp/list.yaml"
printf 'steps:\n  - reboot: {}\n' >"$tmp/step.yaml"
expect_error "run: unknown step kind" "line 2: unknown step kind 'reboot' (expected: kexec, dump, host)" run "$tmp/step.yaml"
printf 'guest: [1\n' >"$tmp/syntax.yaml"
expect_error "run: YAML syntax" "syntax.yaml line 2: not valid YAML" run "$tmp/syntax.yaml"
printf 'workload: [touch=1G, jump=1G]\n' >"$tmp/phases.yaml"
expect_error "run: a bad workload phase" "line 1: 'workload': unknown workload 'jump'" run "$tmp/phases.yaml"
printf 'steps:\n  - dump: {level: 31}\n' >"$tmp/dump-nothing.yaml"
expect_error "run: dump step with nothing to do" "line 2: dump: nothing to do" run "$tmp/dump-nothing.yaml"
printf 'boot: false\nsteps: [{kexec: {}}]\n' >"$tmp/noboot.yaml"
expect_error "run: kexec without a boot" "needs a booted guest" run "$tmp/noboot.yaml"
expect_error "run: missing file" "cannot read scenario file" run "$tmp/does-not-exist.yaml"
# Steps that continue from the previous step's guest (from: previous): combinations that cannot apply.
printf 'steps:\n  - host: {from: previous}\n' >"$tmp/from-host.yaml"
expect_error "run: a host step from previous" "from-host.yaml line 2: 'from': previous: a host step runs its own TD" run "$tmp/from-host.yaml"
printf 'steps:\n  - dump: {estimate: true}\n  - kexec: {from: previous}\n' >"$tmp/from-dump.yaml"
expect_error "run: a kexec after a dump" "line 3: 'from': previous: step 1 crashed the guest into kdump" run "$tmp/from-dump.yaml"
printf 'boot: false\nsteps:\n  - dump: {from: previous, estimate: true}\n' >"$tmp/from-noboot.yaml"
expect_error "run: from previous without a boot" "line 3: 'from': previous: with boot: false no guest runs" run "$tmp/from-noboot.yaml"
printf 'steps:\n  - dump: {from: previous, input: x.vmcore, output: y}\n' >"$tmp/from-input.yaml"
expect_error "run: a dump of a file from previous" "line 2: 'from': previous: a dump of the file 'x.vmcore' does not start from a guest" run "$tmp/from-input.yaml"
printf 'steps:\n  - kexec: {load-only: true}\n  - kexec:\n      from: previous\n' >"$tmp/from-loaded.yaml"
expect_error "run: a second load over a loaded image" "line 4: 'from': previous: step 1 loaded a normal image without executing it" run "$tmp/from-loaded.yaml"
printf 'steps:\n  - host: |\n      td vcpus=2\n      slot id=1 base=0 pages=512\n  - dump: {from: previous, estimate: true}\n' >"$tmp/from-after-host.yaml"
expect_error "run: a dump after a host step" "line 5: 'from': previous: step 1 is a host step" run "$tmp/from-after-host.yaml"
printf 'steps:\n  - kexec: {from: earlier}\n' >"$tmp/from-value.yaml"
expect_error "run: a bad from value" "line 2: 'from' must be one of boot, previous, got 'earlier'" run "$tmp/from-value.yaml"
printf 'guest: {memory: 4G}\nkernel: {version: "6.12"}\nsteps:\n  - kexec: {initrd: 256M}\n  - dump: {from: previous, estimate: true}\n' >"$tmp/from-dead.yaml"
expect_output "run: a dump of a guest a kexec killed is not run" "Not run: the guest it continues from died in step 1. Outcome: guest_terminated: KVM: VM dead: Guest access before accepting" run "$tmp/from-dead.yaml"
printf 'steps:\n  - kexec: {load-only: true, workload: [touch=1G]}\n' >"$tmp/next-workload-load-only.yaml"
expect_error "run: a next workload with load-only" "line 2: 'workload' is the next kernel's" run "$tmp/next-workload-load-only.yaml"
printf 'steps:\n  - kexec: {workload: [jump=1G]}\n' >"$tmp/next-workload-bad.yaml"
expect_error "run: a bad next workload" "line 2: 'workload': unknown workload 'jump'" run "$tmp/next-workload-bad.yaml"
expect_error "kexec --next-workload with --load-only" "--next-workload runs on the kernel kexec -e boots" kexec --load-only --next-workload touch=1G
expect_error "kexec --next-workload with --crash" "--crash only loads a crash image" kexec --crash --next-workload touch=1G
expect_error "kexec --next-workload not a workload" "workload 'bogus' is not none" kexec --next-workload bogus
expect_error "run: a directory" "cannot read scenario file" run "$tmp"
expect_error "run: no file" "Missing expected argument '<file>'" run

# --print-scenario round trips: the file a command prints runs to the same result.
roundtrip() {
    local what=$1; shift
    local cmd=$1; shift
    "$bin" "$cmd" "$@" --json >"$tmp/direct.json" 2>&1
    "$bin" "$cmd" "$@" --print-scenario >"$tmp/printed.yaml" 2>&1
    "$bin" run "$tmp/printed.yaml" --json >"$tmp/run.json" 2>&1
    if python3 - "$cmd" "$tmp/direct.json" "$tmp/run.json" <<'PY'
import json, sys
cmd, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
got = b["boot"] if cmd == "boot" else b["steps"][0]["result"]
sys.exit(0 if a == got else 1)
PY
    then pass=$((pass + 1)); else echo "FAIL: round trip $what: $(head -c 300 "$tmp/run.json")"; fail=$((fail + 1)); fi
}
roundtrip "boot default" boot
roundtrip "boot 64G eager tdx-huge" boot --memory 64G --vcpus 8 --accept eager --host tdx-huge --workload touch=4G
roundtrip "boot snp" boot --platform snp --memory 4G --host-mapping 2m --no-acceptance-protocol-call --snp-prefault
roundtrip "boot tdvf-2022 6.5" boot --memory 6G --firmware tdvf-2022 --fw-partial-accept 512M --kernel 6.5 --loader grub-ebs --deferred-init off --boot-alloc 128M --workload rate=256M:5 --seed 3
roundtrip "boot 65.5G 6.16" boot --memory 65.5G --kernel 6.16
roundtrip "boot edk2 tag" boot --platform snp --memory 6G --firmware edk2-stable202508 --kernel 6.12.30
roundtrip "boot stable point release" boot --memory 8G --vcpus 64 --kernel 6.6.87
roundtrip "kexec" kexec --memory 4G --kernel 6.16 --initrd 256M --syscall kexec_load --init-size 48M --kernel-alignment 16M --cmdline-len 300 --next-kernel 7.0
roundtrip "kexec crash" kexec --memory 8G --crash --load-only
roundtrip "kexec next workload" kexec --memory 4G --next-kernel 7.0 --next-workload touch=1G
roundtrip "dump estimate" dump --memory 2G --kernel 6.16 -c -d 31 --estimate --sample 64 --thp always --workload touch=512M --makedumpfile 1.7.7
roundtrip "dump on 7.1 with slab folios" dump --memory 1G --kernel 7.1 -c -d 31 --estimate --slub-order 2 --makedumpfile dev
roundtrip "SNP SoftReserved range" boot --platform snp --memory 8G --soft-reserved 1G --retain-soft-reserved
roundtrip "dump mem-usage" dump --memory 2G --kernel 6.16 --mem-usage --crashkernel 128M
roundtrip "host" host --policy zap-first --precheck off --check-invariants
# A JSON result reruns as itself.
"$bin" kexec --memory 2G --kernel 6.12 --initrd 256M --json >"$tmp/result.json"
if "$bin" run "$tmp/result.json" --json | python3 -c "import json,sys; a=json.load(open('$tmp/result.json')); b=json.load(sys.stdin); sys.exit(0 if a == b['steps'][0]['result'] else 1)"; then
    pass=$((pass + 1))
else
    echo "FAIL: a JSON result does not rerun as itself"; fail=$((fail + 1))
fi
# A step that continues from the one before reruns from its result: the file it embeds keeps the chain.
printf 'guest: {memory: 2G}\nkernel: {version: "6.16"}\nworkload: [touch=512M]\nsteps:\n  - kexec: {from: previous, workload: [touch=256M]}\n  - dump: {from: previous, level: 31, estimate: true}\n' >"$tmp/chain.yaml"
"$bin" run "$tmp/chain.yaml" --json | python3 -c "import json,sys; json.dump(json.load(sys.stdin)['steps'][1]['result'], open('$tmp/chain-step.json', 'w'))"
if "$bin" run "$tmp/chain-step.json" --json | python3 -c "import json,sys; a=json.load(open('$tmp/chain-step.json')); b=json.load(sys.stdin); sys.exit(0 if a == b['steps'][-1]['result'] and len(b['steps']) == 2 else 1)"; then
    pass=$((pass + 1))
else
    echo "FAIL: a continuing step's JSON result does not rerun as itself"; fail=$((fail + 1))
fi
# A CRLF map (a serial-console log) has the same unaccepted table as an LF one.
printf 'efi: mem00: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0-0x3fffffff] (1024MB)\r\nefi: mem01: [Unaccepted  |   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x100000000-0x13fffffff] (1024MB)\r\n' >"$tmp/crlf.map"
expect_output "CRLF memory map" '"units_set": 512' accept --memmap "$tmp/crlf.map"
printf '0xffffffffffffffff 0xffffffffffffffff\r\n' >"$tmp/wrap.calls"
expect_error "calls line past the address space" "calls line 1: start + size passes" accept --memmap "$tmp/crlf.map" --calls "$tmp/wrap.calls"
printf '{"core_write_gib_per_s": {"value": -1, "source": "x"}}\n' >"$tmp/neg.calibration"
expect_error "negative calibration rate" "core_write_gib_per_s" boot --calibration "$tmp/neg.calibration"
expect_error "unknown calibration profile" "no calibration profile 'tdx-nonesuch'" boot --profile tdx-nonesuch
expect_error "unknown calibration profile (validate)" "no calibration profile 'x'" validate --profile x
sed 's/"profiles": {/"profiles": {"p": {"ops": {"no.such.op": {"ns": 1}}},/' Sources/CostModel/Resources/calibration.json >"$tmp/badprofile.calibration"
expect_error "profile overriding an unknown operation" "not an operation of the file" boot --calibration "$tmp/badprofile.calibration" --profile p
printf '{"profiles": {"p": {}}}\n' >"$tmp/noprofile.calibration"
expect_error "profile of a file without it" "no calibration profile 'q'" boot --calibration "$tmp/noprofile.calibration" --profile q
mkfifo "$tmp/fifo.map"
expect_error "a FIFO as --memmap" "not a regular file" accept --memmap "$tmp/fifo.map"
expect_error "a FIFO as a host scenario" "not a regular file" host "$tmp/fifo.map"

# A kexec load that cannot be placed is an outcome of the simulation, reported, not an error.
if "$bin" kexec --memory 1G --initrd 900M >"$tmp/out" 2>"$tmp/err" && grep -q "Load: failed: E" "$tmp/out"; then
    pass=$((pass + 1))
else
    echo "FAIL: oversized kexec load: $(head -c 300 "$tmp/out" "$tmp/err")"; fail=$((fail + 1))
fi

# An interrupted dump (SIGINT) or a killed one (SIGKILL, which no handler
# sees) leaves no file and no temporary file behind. Wait until the process
# has its output open (an unnamed O_TMPFILE file in the directory, or a
# named temporary where the filesystem has none), so the signal lands mid-write.
for sig in INT KILL; do
    rm -rf "$tmp/int"; mkdir -p "$tmp/int"
    "$bin" dump --memory 4G --kernel 6.12 --workload pagecache=2G --elf "$tmp/int/vmcore" >/dev/null 2>&1 &
    pid=$!
    started=
    for _ in $(seq 1 200); do
        if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "$tmp/int/"; then started=yes; break; fi
        sleep 0.1
    done
    kill -"$sig" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ -z "$started" ]; then
        echo "FAIL: SIG$sig during a dump: the write never started"; fail=$((fail + 1))
    elif [ -n "$(ls -A "$tmp/int")" ]; then
        echo "FAIL: SIG$sig during a dump left files: $(ls -A "$tmp/int")"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
done

# Dangerous outputs: one error line, nothing written, nothing replaced.
# expect_untouched DESCRIPTION: the directory $tmp/paths holds only what it held before.
mkdir -p "$tmp/paths"
"$bin" dump --memory 256M --kernel 6.16 -d 1 -o "$tmp/paths/existing" >/dev/null 2>&1
mkfifo "$tmp/paths/fifo"
before=$(ls -A "$tmp/paths" | sort | tr '\n' ' ')
expect_untouched() {
    local now
    now=$(ls -A "$tmp/paths" | sort | tr '\n' ' ')
    if [ "$now" != "$before" ]; then echo "FAIL: $1 left: $now (before: $before)"; fail=$((fail + 1)); else pass=$((pass + 1)); fi
}
if [ -w /dev/null ]; then
    expect_error "-o a character device, even with -f" "character device" dump --memory 256M -o /dev/null -f
    if [ -c /dev/null ]; then pass=$((pass + 1)); else echo "FAIL: /dev/null is no longer a device"; fail=$((fail + 1)); fi
fi
expect_error "-o a FIFO" "only a regular file is ever replaced" dump --memory 256M -o "$tmp/paths/fifo" -f
expect_untouched "-o a FIFO"
expect_error "-o the input vmcore" "is the input vmcore" dump --input "$tmp/small.vmcore" -o "$tmp/small.vmcore" -f
expect_error "--elf and -o the same file" "both name" dump --memory 256M --elf "$tmp/paths/same" -o "$tmp/paths/same"
expect_untouched "--elf and -o the same file"
expect_error "existing dump file without -f" "Can't open the dump file ($tmp/paths/existing). File exists" dump --memory 256M -o "$tmp/paths/existing"
expect_untouched "existing dump file without -f"
expect_error "-o /proc/version" "/proc/version" dump --memory 256M -o /proc/version -f
expect_untouched "-o /proc/version"
expect_error "a FIFO as --input" "a FIFO, not a regular file" dump --input "$tmp/paths/fifo" -o "$tmp/paths/out"
expect_untouched "a FIFO as --input"
if "$bin" dump --memory 256M --kernel 6.16 -d 1 -o "$tmp/paths/existing" -f >/dev/null 2>&1; then pass=$((pass + 1)); else echo "FAIL: -f did not overwrite a dump file"; fail=$((fail + 1)); fi
expect_untouched "-f over an existing dump file"

# A host scenario with CRLF line endings runs exactly as the LF one.
"$bin" host --print-default >"$tmp/lf.host"
sed 's/$/\r/' "$tmp/lf.host" >"$tmp/crlf.host"
if "$bin" host "$tmp/lf.host" >"$tmp/lf.json" 2>&1 && "$bin" host "$tmp/crlf.host" >"$tmp/crlf.json" 2>&1 \
    && cmp -s "$tmp/lf.json" "$tmp/crlf.json"; then
    pass=$((pass + 1))
else
    echo "FAIL: a CRLF host scenario differs from the LF one: $(head -c 300 "$tmp/crlf.json")"; fail=$((fail + 1))
fi

# A long host log is not kept in memory: the text report streams every line
# (24,000 here), the JSON object keeps the first and last 10,000 and says how
# many it dropped.
printf 'td host=tdx-huge\nslot id=1 base=0 pages=4096\nfinalize\naccept 0x0+1024 linux\ncycle 0x10+1 8000\n' >"$tmp/long.host"
"$bin" host "$tmp/long.host" --log >"$tmp/long.txt" 2>&1
"$bin" host "$tmp/long.host" --log --json >"$tmp/long.json" 2>&1
if [ "$(grep -c '^  ' "$tmp/long.txt")" -ge 24000 ] \
    && grep -q '"\.\.\. [0-9]* lines dropped: the log keeps its first 10000 and last 10000 lines' "$tmp/long.json"; then
    pass=$((pass + 1))
else
    echo "FAIL: a long host --log is not streamed (text) or bounded (JSON)"; fail=$((fail + 1))
fi

# --fail-on: exit 2 after the report when the outcome matches, 0 when it does not.
# expect_exit DESCRIPTION CODE EXPECTED-STDOUT-REGEX ARGS...
expect_exit() {
    local what=$1 code=$2 want=$3; shift 3
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -q -- "$want" "$tmp/out" || [ -s "$tmp/err" ]; then
        echo "FAIL: $what (exit $rc, want $code): $(head -c 300 "$tmp/out" "$tmp/err")"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}
expect_exit "--fail-on degraded on a degraded boot" 2 "^Outcome: degraded: kernel without CONFIG_UNACCEPTED_MEMORY" \
    boot --memory 8G --no-unaccepted-support --fail-on degraded
expect_exit "--fail-on any on a degraded boot (JSON)" 2 '"outcome": "degraded: workload touch=128G clamped' \
    boot --memory 4G --workload touch=128G --json --fail-on any
expect_exit "--fail-on guest_terminated on a degraded boot" 0 "^Outcome: degraded" \
    boot --memory 8G --no-unaccepted-support --fail-on guest_terminated,load_failed
expect_exit "--fail-on any on an ok boot" 0 "^Outcome: ok" boot --memory 4G --fail-on any
expect_exit "--fail-on guest_terminated on a kexec that dies" 2 "guest_terminated" \
    kexec --memory 4G --kernel 6.12 --initrd 256M --fail-on guest_terminated
expect_exit "--fail-on any on an ok host run" 0 "Outcome: ok" host --fail-on any
expect_exit "--fail-on on run" 2 "guest_terminated" run examples/tdx421-65.5g-oops-on-6.16.yaml --fail-on degraded,guest_terminated
expect_exit "--fail-on degraded on a dump of a degraded guest" 2 "^Write bytes" \
    dump --memory 8G --kernel 6.16 --no-unaccepted-support -d 31 --estimate --fail-on degraded
expect_exit "--fail-on any on a dump of an ok guest" 0 "^Write bytes" dump --memory 2G --kernel 6.16 -d 31 --estimate --fail-on any
expect_error "--fail-on with an unknown outcome" "'bogus' is not an outcome" boot --fail-on bogus

# Sweeps and results databases (docs/SCENARIOS.md "Sweeps", docs/RESULTS.md).
printf 'guest:\n  memroy: [4G, 8G]\n' >"$tmp/sw-key.yaml"
printf 'guest:\n  vcpus: [one, 2]\n' >"$tmp/sw-type.yaml"
printf 'guest:\n  memory: 4G..64G +0\n' >"$tmp/sw-endless.yaml"
printf 'guest:\n  memory: 64G..4G *2\n' >"$tmp/sw-backwards.yaml"
printf 'guest:\n  memory: 4G..404G +4M\n  vcpus: [1, 2]\n' >"$tmp/sw-many.yaml"
printf 'guest:\n  memory: 1G\n' >"$tmp/sw-one.yaml"
printf 'guest:\n  memory: 1G..2G +1G\nsweep:\n  find:\n    largest: memroy\n    where: "total_boot_s < 45"\n' >"$tmp/sw-find.yaml"
printf 'not sqlite\n' >"$tmp/foreign.db"
expect_error "sweep: unknown key" "line 2: unknown key 'memroy'" sweep "$tmp/sw-key.yaml" --db "$tmp/s.db"
expect_error "sweep: wrong type" "line 2: 'vcpus' must be an integer" sweep "$tmp/sw-type.yaml" --db "$tmp/s.db"
expect_error "sweep: endless range" "never ends" sweep "$tmp/sw-endless.yaml" --db "$tmp/s.db"
expect_error "sweep: backwards range" "never ends" sweep "$tmp/sw-backwards.yaml" --db "$tmp/s.db"
expect_error "sweep: too many points" "pass --yes" sweep "$tmp/sw-many.yaml" --db "$tmp/s.db"
expect_error "sweep: find names no axis" "'memroy', which is not a list or range" sweep "$tmp/sw-find.yaml" --db "$tmp/s.db"
expect_error "sweep: --shard 5/4" "I must be between 1 and 4" sweep "$tmp/sw-one.yaml" --db "$tmp/s.db" --shard 5/4
expect_error "sweep: --shard 0/4" "I must be between 1 and 4" sweep "$tmp/sw-one.yaml" --db "$tmp/s.db" --shard 0/4
expect_error "sweep: --shard 1/0" "N must be at least 1" sweep "$tmp/sw-one.yaml" --db "$tmp/s.db" --shard 1/0
expect_error "sweep: foreign database" "not a cocomem results database" sweep "$tmp/sw-one.yaml" --db "$tmp/foreign.db"
expect_error "sweep: database is a directory" "not a regular file" sweep "$tmp/sw-one.yaml" --db "$tmp"
# --plot names resolve before the sweep runs (on its first point of each platform): a typo, one line with the nearest columns.
printf 'guest:\n  platform: [tdx, snp]\n  memory: [1G, 2G]\n' >"$tmp/sw-plot.yaml"
expect_error "sweep: --plot naming no column" "--plot memory,totl_boot_s: no column 'totl_boot_s' in the sweep's points (nearest: virtual_time_total_boot_s" \
    sweep "$tmp/sw-plot.yaml" --db "$tmp/s.db" --report "$tmp/plot.html" --plot memory,totl_boot_s
expect_error "sweep: --plot naming no axis" "no column 'memroy' in the sweep's points (nearest: guest_memory" \
    sweep "$tmp/sw-plot.yaml" --db "$tmp/s.db" --report "$tmp/plot.html" --plot memroy,total_boot_s
[ -e "$tmp/plot.html" ] && { echo "FAIL: a sweep with a bad --plot wrote its report"; fail=$((fail + 1)); }
expect_error "sweep: --plot without --report" "--plot draws on the --report page" \
    sweep "$tmp/sw-plot.yaml" --db "$tmp/s.db" --plot memory,total_boot_s
expect_output "sweep: --plot of a figure only SNP points have" "4 points (4 new)" \
    sweep "$tmp/sw-plot.yaml" --db "$tmp/plot.db" --report "$tmp/plot.html" --plot memory,psc_vmgexit,platform
[ -e "$tmp/s.db" ] && { echo "FAIL: a failed sweep left a database"; fail=$((fail + 1)); }
if command -v sqlite3 >/dev/null; then
    sqlite3 "$tmp/other.db" "CREATE TABLE t (a)"
    expect_error "sweep: SQLite database of another schema" "no 'cocomem-results 1' schema" sweep "$tmp/sw-one.yaml" --db "$tmp/other.db"
    "$bin" sweep "$tmp/sw-one.yaml" --db "$tmp/locked.db" >/dev/null
    (printf 'BEGIN EXCLUSIVE;\n'; sleep 5) | sqlite3 "$tmp/locked.db" & locker=$!
    sleep 1
    expect_error "sweep: locked database" "is locked" sweep "$tmp/sw-one.yaml" --db "$tmp/locked.db"
    kill "$locker" 2>/dev/null; wait "$locker" 2>/dev/null
fi
expect_error "results merge into an input" "both an input and the output" results merge --into "$tmp/foreign.db" "$tmp/foreign.db"
expect_error "results merge of a foreign database" "not a cocomem results database" results merge --into "$tmp/m.db" "$tmp/foreign.db"
expect_error "results export of a missing database" "no results database" results export "$tmp/none.db" --format csv
expect_error "results show with a bad condition" "expected a value" results show "$tmp/locked.db" --where "outcome =="
expect_error "sweep: --plot that is not X,Y" "is not X,Y" sweep "$tmp/sw-one.yaml" --db "$tmp/s.db" --plot memory
expect_error "results show --report over its database" "is one of the command's inputs" results show "$tmp/locked.db" --report "$tmp/locked.db"
expect_error "results show --plot naming no column" "no column 'memroy'" results show "$tmp/locked.db" --report "$tmp/r.html" --plot memroy,total_boot_s
# --report and --trace: checked before the run, one error line, nothing written or replaced.
cp examples/snp-ebs-retry.yaml "$tmp/paths/run.yaml"
before=$(ls -A "$tmp/paths" | sort | tr '\n' ' ')
expect_error "--report in a missing directory" "directory '$tmp/nowhere' does not exist" boot --memory 1G --report "$tmp/nowhere/r.html"
expect_error "--trace in a missing directory" "directory '$tmp/nowhere' does not exist" boot --memory 1G --trace "$tmp/nowhere/t.json"
expect_error "--report a FIFO" "only a regular file is ever replaced" boot --memory 1G --report "$tmp/paths/fifo"
expect_untouched "--report a FIFO"
expect_error "--report a directory" "it is a directory" boot --memory 1G --report "$tmp/paths"
expect_error "--trace a character device" "character device" boot --memory 1G --trace /dev/null
expect_error "--report and --trace the same file" "both name" boot --memory 1G --report "$tmp/paths/x" --trace "$tmp/paths/x"
expect_untouched "--report and --trace the same file"
expect_error "--report the dump file" "both name" dump --memory 256M -o "$tmp/paths/d" --report "$tmp/paths/d"
expect_untouched "--report the dump file"
expect_error "--report the input vmcore" "is one of the command's inputs" dump --input "$tmp/small.vmcore" -o "$tmp/paths/o" --report "$tmp/small.vmcore"
expect_error "--report the scenario file" "is one of the command's inputs" run "$tmp/paths/run.yaml" --report "$tmp/paths/run.yaml"
expect_error "--report the host scenario" "is one of the command's inputs" host "$tmp/lf.host" --report "$tmp/lf.host"
expect_error "--report the calibration file" "is one of the command's inputs" boot --calibration Sources/CostModel/Resources/calibration.json --report Sources/CostModel/Resources/calibration.json
expect_error "--report with --mem-usage" "--mem-usage prints only its table" dump --memory 256M --mem-usage --report "$tmp/paths/m.html"
expect_untouched "--report with --mem-usage"
expect_error "--strip with --json" "--strip adds to the text report" boot --memory 1G --strip --json
expect_error "--strip with --meminfo" "--strip adds to the text report" boot --memory 1G --strip --meminfo
if "$bin" boot --memory 1G --report "$tmp/paths/existing.html" >/dev/null 2>&1 && "$bin" boot --memory 1G --report "$tmp/paths/existing.html" >/dev/null 2>&1 \
    && grep -q "</html>" "$tmp/paths/existing.html"; then pass=$((pass + 1)); rm "$tmp/paths/existing.html"; else echo "FAIL: --report did not write or replace a report"; fail=$((fail + 1)); fi
expect_untouched "--report written and replaced"
# --host-trace (issue 18): checked before the run as --report and --trace are: one error line and
# nothing on stdout (no boot or host run went ahead), nothing written or replaced. An unwritable
# directory is found by making the temporary file the write would use (/proc/self takes none, even as root).
# expect_refused DESCRIPTION EXPECTED-SUBSTRING ARGS...: expect_error, and the command printed nothing.
expect_refused() {
    expect_error "$@"
    if [ -s "$tmp/out" ]; then echo "FAIL: $1: the run went ahead before the error ($(head -c 100 "$tmp/out"))"; fail=$((fail + 1)); fi
}
printf 'td host=tdx-huge vcpus=2\nslot id=1 base=0 pages=0x1000\nfinalize\naccept 0x0+0x400 linux\naccept 0x400+0x400 linux vcpu=1\n' >"$tmp/paths/ht.host"
printf 'td platform=snp vcpus=2\nslot id=1 base=0 pages=0x1000 backing=buddy\nfinalize\naccept 0x0+0x400 linux\naccept 0x400+0x400 linux vcpu=1\n' >"$tmp/paths/ht-snp.host"
printf 'boot: false\nsteps:\n  - host:\n      host-trace: %s\n      commands: |\n        td host=tdx-huge\n        slot id=1 base=0 pages=0x800\n        finalize\n        accept 0x0+0x400 linux\n' "$tmp/paths/ht-run.yaml" >"$tmp/paths/ht-run.yaml"
before=$(ls -A "$tmp/paths" | sort | tr '\n' ' ')
expect_refused "boot --host-trace in an unwritable directory" "cannot write '/proc/self/ht.jsonl'" boot --memory 1G --host-trace /proc/self/ht.jsonl
expect_refused "--report in an unwritable directory" "cannot write '/proc/self/r.html'" boot --memory 1G --report /proc/self/r.html
expect_refused "--trace in an unwritable directory" "cannot write '/proc/self/t.json'" boot --memory 1G --trace /proc/self/t.json
if [ "$(id -u)" -ne 0 ]; then
    mkdir -p "$tmp/ro" && chmod 555 "$tmp/ro"
    expect_refused "boot --host-trace in a read-only directory" "cannot write '$tmp/ro/ht.jsonl'" boot --memory 1G --host-trace "$tmp/ro/ht.jsonl"
    chmod 755 "$tmp/ro"
fi
expect_refused "boot --host-trace a directory" "it is a directory" boot --memory 1G --host-trace "$tmp/paths"
expect_refused "boot --host-trace a FIFO" "only a regular file is ever replaced" boot --memory 1G --host-trace "$tmp/paths/fifo"
expect_refused "boot --host-trace a character device" "character device" boot --memory 1G --host-trace /dev/null
expect_refused "boot --host-trace the calibration file" "is one of the command's inputs" boot --memory 1G --calibration Sources/CostModel/Resources/calibration.json --host-trace Sources/CostModel/Resources/calibration.json
expect_refused "boot --host-trace and --report the same file" "both name" boot --memory 1G --report "$tmp/paths/x" --host-trace "$tmp/paths/x"
expect_refused "host --host-trace the host scenario" "is one of the command's inputs" host "$tmp/paths/ht.host" --host-trace "$tmp/paths/ht.host"
expect_refused "host --host-trace in an unwritable directory" "cannot write '/proc/self/ht.jsonl'" host "$tmp/paths/ht.host" --host-trace /proc/self/ht.jsonl
expect_refused "host --platform snp --host-trace a character device" "character device" host "$tmp/paths/ht-snp.host" --host-trace /dev/null
expect_refused "host --host-trace and --trace the same file" "both name" host "$tmp/paths/ht.host" --trace "$tmp/paths/x" --host-trace "$tmp/paths/x"
expect_refused "run: a host step's host-trace: the scenario file" "is one of the command's inputs" run "$tmp/paths/ht-run.yaml"
expect_untouched "--host-trace refused"
# host --host-trace: the boot's records and Host inference line, for the host command language (TDX and SNP).
expect_output "host --host-trace on the TDX host" "Host trace (what KVM sees of the guest's memory use): 2 records; 4 accept exits (4 at 2M) Host inference: first touch seen for 8M of 8M accepted (100.0%; 8M at 2M)" host "$tmp/paths/ht.host" --host-trace "$tmp/ht-tdx.jsonl"
if [ "$(grep -c '"kind":"accept"' "$tmp/ht-tdx.jsonl")" -eq 2 ] && tail -1 "$tmp/ht-tdx.jsonl" | grep -q '"summary":{"records":2'; then
    pass=$((pass + 1))
else
    echo "FAIL: host --host-trace wrote no accept records or no summary"; fail=$((fail + 1))
fi
expect_output "host --platform snp --host-trace" "2 of 2 guest accept calls exited" host "$tmp/paths/ht-snp.host" --host-trace "$tmp/ht-snp.jsonl"
if grep -q '"kind":"psc-private".*"answer":"ok"' "$tmp/ht-snp.jsonl" && tail -1 "$tmp/ht-snp.jsonl" | grep -q '"summary"'; then
    pass=$((pass + 1))
else
    echo "FAIL: host --platform snp --host-trace wrote no PSC records or no summary"; fail=$((fail + 1))
fi
if "$bin" host "$tmp/paths/ht.host" --json --host-trace "$tmp/ht-tdx2.jsonl" | tr -d ' \n' | grep -q '"host_trace":{"records":2,' && cmp -s "$tmp/ht-tdx.jsonl" "$tmp/ht-tdx2.jsonl"; then
    pass=$((pass + 1))
else
    echo "FAIL: host --json --host-trace has no host_trace object or another file"; fail=$((fail + 1))
fi
sed "s|host-trace: .*|host-trace: ht-step.jsonl|" "$tmp/paths/ht-run.yaml" >"$tmp/ht-step.yaml"
if "$bin" run "$tmp/ht-step.yaml" --out "$tmp/htout" | grep -q "Host inference:" && tail -1 "$tmp/htout/ht-step.jsonl" | grep -q '"summary"'; then
    pass=$((pass + 1))
else
    echo "FAIL: run: a host step's host-trace: wrote no file under --out"; fail=$((fail + 1))
fi
# Progress lines (issue 14, section 3): nothing on a stderr that is not a
# terminal, lines on it with --progress, and the same stdout and files either way.
# expect_progress DESCRIPTION WANT(yes|no) OUTPUT-FILE ARGS...: runs in $tmp/p,
# compares stdout and the written file with a run given --no-progress.
expect_progress() {
    local what=$1 want=$2 file=$3; shift 3
    rm -rf "$tmp/p" "$tmp/q"; mkdir -p "$tmp/p" "$tmp/q"
    local exe; exe=$(realpath "$bin")
    (cd "$tmp/p" && "$exe" "$@" >"$tmp/out" 2>"$tmp/err"); local rc=$?
    (cd "$tmp/q" && "$exe" "$@" --no-progress >"$tmp/out2" 2>"$tmp/err2")
    local shown=no
    grep -q "%.*) in [0-9]" "$tmp/err" && shown=yes
    if [ "$rc" -ne 0 ] || [ "$shown" != "$want" ] || [ -s "$tmp/err2" ] || ! cmp -s "$tmp/out" "$tmp/out2" \
        || { [ -n "$file" ] && ! cmp -s "$tmp/p/$file" "$tmp/q/$file"; } \
        || { [ "$want" = no ] && [ -s "$tmp/err" ]; }; then
        echo "FAIL: $what (exit $rc, progress shown: $shown): $(head -c 300 "$tmp/err")"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}
expect_progress "no progress line when stderr is not a terminal" no x.kdump dump --memory 1G --kernel 6.16 -d 31 -c -o x.kdump
expect_progress "--progress on a dump write" yes x.kdump dump --memory 1G --kernel 6.16 -d 31 -c -o x.kdump --progress
expect_progress "--progress on an ELF vmcore and -E dump" yes x.elf dump --memory 1G --kernel 6.16 -d 31 -E -o x.elf --elf v.elf --progress
expect_progress "--progress on an exact estimate" yes "" dump --memory 1G --kernel 6.16 -d 31 -c --estimate --progress
expect_progress "--progress on a step-by-step boot" yes "" boot --memory 512M --accept eager --step-by-step --progress
printf 'guest: {memory: 512M}\nkernel: {accept: eager}\nstep-by-step: true\n' >"$tmp/stepbystep.yaml"
expect_progress "--progress on run" yes "" run "$tmp/stepbystep.yaml" --progress --json
printf 'guest: {memory: [1G, 2G]}\n' >"$tmp/sweep2.yaml"
expect_progress "--progress on a sweep" yes x.db sweep "$tmp/sweep2.yaml" --db x.db --progress
expect_progress "no sweep progress line when stderr is not a terminal" no "" sweep "$tmp/sweep2.yaml" --db x.db

# cocomem check: bad configuration files (docs/CHECKER.md).
ck() { printf '%b' "$2" >"$tmp/$1.yaml"; }
ck empty ''
ck notmap '- a\n- b\n'
ck nomodel 'parameters: {vcpus: 2}\n'
ck unknownmodel 'model: tla-plus\n'
ck topkey 'model: acceptance-core\nsymetry: on\n'
ck paramkey 'model: acceptance-core\nparameters: {vcpu: 2}\n'
ck vcpus 'model: acceptance-core\nparameters: {vcpus: 4}\n'
ck pages 'model: acceptance-core\nparameters: {pages-per-range: 0}\n'
ck mapping 'model: acceptance-core\nparameters: {host-mapping: 1g}\n'
ck search 'model: acceptance-core\nsearch: dfs\n'
ck onoff 'model: acceptance-core\nsymmetry: maybe\n'
ck porhc 'model: acceptance-core\npor: on\nhash-compaction: on\n'
ck swarmbound 'model: acceptance-core\nsearch: swarm\nmax-states: 10\n'
ck seeds 'model: acceptance-core\nsearch: swarm\nswarm: {seeds: 5-1}\n'
ck manyseeds 'model: acceptance-core\nsearch: swarm\nswarm: {seeds: 0-99999999}\n'
ck paramsmap 'model: acceptance-core\nparameters: 3\n'
ck depth 'model: acceptance-core\nmax-depth: -1\n'
ck nested 'model: acceptance-core\nparameters: {vcpus: [2, 3]}\n'
ck badyaml 'model: [acceptance-core\n'
ck smallswarm 'model: acceptance-core\nsearch: swarm\nswarm: {seeds: 1-4, max-depth: 40}\n'
ck swarmcycles 'model: acceptance-core\nsearch: swarm\ncycles: on\n'
ck kexeccycles 'model: kexec\ncycles: on\nparameters:\n  kernel: "6.12"\n'
ck refuse 'model: acceptance-core\nparameters: {refuse-aug: sometimes}\n'
ck cyclesbad 'model: acceptance-core\ncycles: both\n'
expect_error "check: missing file" "cannot read check file" check "$tmp/nonexistent.yaml"
expect_error "check: a directory" "not a regular file" check "$tmp"
expect_error "check: empty file" "empty or not a mapping" check "$tmp/empty.yaml"
expect_error "check: a list, not a mapping" "empty or not a mapping" check "$tmp/notmap.yaml"
expect_error "check: no model" "no .model:" check "$tmp/nomodel.yaml"
expect_error "check: unknown model" "unknown model 'tla-plus'" check "$tmp/unknownmodel.yaml"
expect_error "check: unknown top-level key" "unknown key 'symetry'" check "$tmp/topkey.yaml"
expect_error "check: unknown parameter" "unknown key 'parameters.vcpu'" check "$tmp/paramkey.yaml"
expect_error "check: too many vCPUs" "parameters.vcpus: '4' is not a number in 1...3" check "$tmp/vcpus.yaml"
expect_error "check: zero pages per range" "pages-per-range" check "$tmp/pages.yaml"
expect_error "check: unknown host mapping" "host-mapping: '1g' is not one of 4k, 2m" check "$tmp/mapping.yaml"
expect_error "check: unknown search" "search: 'dfs' is not one of bfs, swarm" check "$tmp/search.yaml"
expect_error "check: not on or off" "symmetry: 'maybe' is not on or off" check "$tmp/onoff.yaml"
expect_error "check: por with hash compaction" "cannot be combined" check "$tmp/porhc.yaml"
expect_error "check: swarm with a bfs bound" "takes its bounds from" check "$tmp/swarmbound.yaml"
expect_error "check: a reversed seed range" "is not a seed" check "$tmp/seeds.yaml"
expect_error "check: too many seeds" "more than 1,000,000 searches" check "$tmp/manyseeds.yaml"
expect_error "check: parameters not a mapping" "must be a mapping" check "$tmp/paramsmap.yaml"
expect_error "check: negative depth" "max-depth: '-1'" check "$tmp/depth.yaml"
expect_error "check: a list as a parameter" "must be a single value" check "$tmp/nested.yaml"
expect_error "check: broken YAML" "not valid YAML" check "$tmp/badyaml.yaml"
expect_error "check: --shard on a bfs search" "splits a swarm's seeds" check examples/check/acceptance-core.yaml --shard 1/2
expect_error "check: --shard with more shards than seeds" "fewer seeds than shards" check "$tmp/smallswarm.yaml" --shard 5/5
expect_error "check: a bad --shard" "is not I/N" check examples/check/swarm.yaml --shard 2
expect_output "check: a swarm shard runs its share of the seeds" "seeds 2, max-depth 40, max-states-per-search 100000, shard 2/2" check "$tmp/smallswarm.yaml" --shard 2/2
expect_output "check: an example runs clean" "violations: none" check examples/check/acceptance-core.yaml
expect_error "check: cycles with a swarm" "needs .search: bfs" check "$tmp/swarmcycles.yaml"
expect_error "check: cycles on a replayed model" "cycles are for the packed models" check "$tmp/kexeccycles.yaml"
expect_error "check: refuse-aug not on or off" "parameters.refuse-aug: 'sometimes' is not on or off" check "$tmp/refuse.yaml"
expect_error "check: cycles not on or off" "cycles: 'both' is not on or off" check "$tmp/cyclesbad.yaml"
expect_output "check: the refuse-aug livelock as a cycle" "cycle, 2 steps" check examples/check/refuse-aug-livelock.yaml
ck amop 'model: accept-memory\nparameters:\n  vcpu0: accept 0x0+0x400; jump 0x0\n'
expect_error "check: accept-memory unknown program operation" "'vcpu0': unknown operation 'jump 0x0'" check "$tmp/amop.yaml"
ck amrange 'model: accept-memory\nparameters:\n  vcpu0: touch 0x0+0\n'
expect_error "check: accept-memory empty range" "is not a range GFN" check "$tmp/amrange.yaml"
ck amgap 'model: accept-memory\nparameters:\n  vcpu1: touch 0x0\n'
expect_error "check: accept-memory program for vcpu1 without vcpu0" "vcpu0, vcpu1, vcpu2 in order" check "$tmp/amgap.yaml"
ck amboth 'model: accept-memory\nparameters:\n  vcpu0: touch 0x0\n  size: 2M\n'
expect_error "check: accept-memory programs and size together" "not both" check "$tmp/amboth.yaml"
ck amhost 'model: accept-memory\nparameters:\n  vcpu0: touch 0x0\n  host-steps: accept 0x0+0x200\n'
expect_error "check: accept-memory a guest command as a host step" "not a host move" check "$tmp/amhost.yaml"
ck amfar 'model: accept-memory\nparameters:\n  vcpu0: touch 0x0\n  host-steps: punch 0x10000+0x200\n'
expect_error "check: accept-memory a host step outside the TD" "reaches past the TD's memory" check "$tmp/amfar.yaml"
ck amfault 'model: accept-memory\nparameters:\n  vcpu0: touch 0x0\n  faults: 1\n  fault-points: gremlins\n'
expect_error "check: accept-memory unknown fault point" "unknown fault point 'gremlins'" check "$tmp/amfault.yaml"
ck ambudget 'model: accept-memory\nparameters:\n  vcpu0: touch 0x0\n  host-steps: remove 0x0\n  host-budget: 9\n'
expect_error "check: accept-memory host budget too large" "'host-budget' must be 0...8" check "$tmp/ambudget.yaml"
ck ampolicy 'model: accept-memory\nparameters:\n  vcpu0: touch 0x0\n  policy: yolo\n'
expect_error "check: accept-memory unknown policy" "'policy' must be one of" check "$tmp/ampolicy.yaml"
expect_output "check: accept-memory kexec with a second vCPU holds on 7.0" "violations: none" check examples/check/accept-memory-kexec.yaml
# The engine's options on model accept-memory (issue 20 §1): symmetry, por, swarm and the bounds are taken,
# hash compaction and the cycle search refused, bad values refused as for every model.
ck amsize 'model: accept-memory\nparameters:\n  vcpu0: accept 0x0+0x200 at 1G\n'
expect_error "check: accept-memory accept at a size that is not 2M or 4K" "the size must be 2M or 4K" check "$tmp/amsize.yaml"
ck amhc 'model: accept-memory\nhash-compaction: on\n'
expect_error "check: accept-memory with hash compaction" "hash-compaction is for packed models" check "$tmp/amhc.yaml"
ck amcycles 'model: accept-memory\ncycles: on\n'
expect_error "check: accept-memory with the cycle search" "cycles is for packed models" check "$tmp/amcycles.yaml"
ck ampor 'model: accept-memory\npor: sometimes\n'
expect_error "check: accept-memory por not on or off" "por: 'sometimes' is not on or off" check "$tmp/ampor.yaml"
ck amswarmpor 'model: accept-memory\nsearch: swarm\npor: on\n'
expect_error "check: accept-memory swarm with por" "takes its bounds from" check "$tmp/amswarmpor.yaml"
ck amseeds 'model: accept-memory\nsearch: swarm\nswarm: {seeds: 9-1}\n'
expect_error "check: accept-memory swarm with a backwards seed range" "swarm.seeds" check "$tmp/amseeds.yaml"
ck amred 'model: accept-memory\nparameters:\n  vcpu0: accept 0x0+0x400; touch 0x5\n  vcpu1: accept 0x0+0x400; touch 0x5\npor: on\n'
expect_output "check: accept-memory with symmetry and por" "symmetry on, por on" check "$tmp/amred.yaml"
expect_output "check: accept-memory swarm finds the planted double accept" "guest.accept-succeeds" check examples/check/accept-memory-swarm.yaml
expect_output "sweep: an accept-memory swarm, one row per seed" "8 points (8 new)" sweep examples/check/accept-memory-swarm.yaml --db "$tmp/amswarm.db"
expect_error "check: --counterexamples into a missing directory" "is not a directory" check examples/check/no-accepting-list.yaml --counterexamples "$tmp/no-such-dir"
mkdir -p "$tmp/cx"
mkfifo "$tmp/cx/no-accepting-list-guest-accept-succeeds.yaml"
expect_error "check: --counterexamples never replaces a FIFO" "only a regular file is ever replaced" check examples/check/no-accepting-list.yaml --counterexamples "$tmp/cx"
rm -f "$tmp/cx/no-accepting-list-guest-accept-succeeds.yaml"
if "$bin" check examples/check/no-accepting-list.yaml --counterexamples "$tmp/cx" >/dev/null 2>&1 \
    && "$bin" run "$tmp/cx/no-accepting-list-guest-accept-succeeds.yaml" 2>/dev/null | grep -q "guest: TDX: Failed to accept memory"; then
    pass=$((pass + 1))
else
    echo "FAIL: check: a written counterexample replays with cocomem run to the failed accept"; fail=$((fail + 1))
fi
ck swarmsweep 'model: acceptance-core\nparameters: {zaps: 1, accepting-list: off, already-accepted: trust}\nsearch: swarm\nswarm: {seeds: 1-4, max-depth: 30, max-states-per-search: 500}\n'
expect_output "sweep: a check swarm, one row per seed" "4 points (4 new)" sweep "$tmp/swarmsweep.yaml" --db "$tmp/swarm.db"
expect_output "results show: the violations across a swarm's seeds" "check: 4 searches" results show "$tmp/swarm.db"
expect_error "sweep: --report on a check file" "is a check file" sweep "$tmp/swarmsweep.yaml" --db "$tmp/swarm2.db" --report "$tmp/r.html"
expect_output "check: the list-less race is found" "guest.accept-succeeds" check examples/check/no-accepting-list.yaml
# Progress: a line on stderr with --progress (swarm: one unit a search),
# nothing without it when stderr is not a terminal.
if "$bin" check "$tmp/smallswarm.yaml" --progress >/dev/null 2>"$tmp/err" && grep -q "%.*) in [0-9]" "$tmp/err" \
    && "$bin" check "$tmp/smallswarm.yaml" >/dev/null 2>"$tmp/err2" && [ ! -s "$tmp/err2" ]; then
    pass=$((pass + 1))
else
    echo "FAIL: check: --progress line on stderr, none by default"; fail=$((fail + 1))
fi

# A scenario whose keys are nested collections ('? ' keys): Yams' duplicate-key
# check compares them in time exponential in their depth (issue 15, found by
# the scenario fuzzer); refused before parsing, with the line.
expect_error "run: nested explicit keys" "explicit mapping key" run Tests/Fixtures/fuzz-regressions/scenario/nested-explicit-keys.yaml
printf 'axes:\n  ? [a]\n  : 1\n' > "$tmp/qkey.yaml"
expect_error "sweep: an explicit key" "explicit mapping key" sweep "$tmp/qkey.yaml"

# cycle COUNT × pages is the work; bounded over the file (issue 15, the host fuzzer).
expect_error "host: cycle work beyond the bound" "at most 1000000 pages in all" host Tests/Fixtures/fuzz-regressions/host/cycle-count-times-pages.txt

# NUMA (issue 16 §3): layouts QEMU or Linux refuse, phases on missing nodes,
# commands that do not model nodes.
expect_error "numa: nodes not adding up" "add up to 5G, not the guest's 4G" boot --memory 4G --numa 3G,2G
expect_error "numa: zero nodes" "between 1 and 128 nodes" boot --numa 0
expect_error "numa: too many nodes" "between 1 and 128 nodes" boot --numa 200
expect_error "numa: a node below NODE_MIN_SIZE" "NODE_MIN_SIZE" boot --memory 4G --numa 4094M,2M
expect_error "numa: a size that is not one" "expected a node count or node sizes" boot --numa 2G,lots
expect_error "numa: an empty size" "expected a node count or node sizes" boot --numa 2G,,2G
expect_error "numa: sockets not dividing the vCPUs" "sockets" boot --numa 2 --vcpus 4 --sockets 3
expect_error "numa: phase on a missing node" "node 2 does not exist" boot --numa 2 --workload touch=1G@2
expect_error "numa: phase on a node that is no number" "is not a NUMA node number" boot --numa 2 --workload touch=1G@one
expect_error "numa: hotplug on a node" "only touch, pagecache, hugetlb and rate" boot --numa 2 --workload hotplug=128M@1
expect_output "numa: kexec boots the next kernel on both nodes" "Next kernel .* outcome ok" kexec --memory 4G --numa 2
expect_output "numa: dump of a two-node guest" "Original pages : 0x" dump --memory 4G --numa 2 --estimate
printf 'guest: {memory: 4G, numa: [3G, 2G]}\n' > "$tmp/numa-bad.yaml"
expect_error "numa: scenario file nodes not adding up" "line 1: 'numa'" run "$tmp/numa-bad.yaml"
printf 'guest: {memory: 4G, numa: {a: 1}}\n' > "$tmp/numa-map.yaml"
expect_error "numa: scenario file numa as a mapping" "node count or a list of node sizes" run "$tmp/numa-map.yaml"
expect_output "numa: per-node meminfo in the report" "Node 1 Unaccepted:" boot --memory 8G --numa 2

# host-faults (issue 17 §1): out-of-range values are one error line.
expect_error "host-faults: no faults" "faults 0: must be 1 to 10000000" host-faults --faults 0
expect_error "host-faults: no vCPUs" "vcpus 0: must be 1 to 4096" host-faults --vcpus 0
expect_error "host-faults: HZ too high" "hz 20000: must be at most 10000" host-faults --hz 20000
expect_error "host-faults: not a number" "--vcpus" host-faults --vcpus abc
expect_output "host-faults: the cost per fault" "per fault (us)" host-faults --faults 100
# eager-scaling (issue 17): bad values are one error line.
expect_error "eager-scaling: no vCPUs" "--vcpus" eager-scaling --vcpus 0
expect_error "eager-scaling: not a count" "--vcpus" eager-scaling --vcpus 1,x
expect_error "eager-scaling: too many vCPUs" "vcpus 5000: must be 1 to 4096" eager-scaling --vcpus 5000
expect_error "eager-scaling: memory not in 4 MiB" "multiple of 4 MiB" eager-scaling --memory 8193M
expect_error "eager-scaling: bad module" "tdx-module" eager-scaling --tdx-module 2.7
expect_output "eager-scaling: a row and the knee" "knee:" eager-scaling --memory 8G --vcpus 1,2,4

# Idle vCPUs halted or polling (issue 17 §1, session 16): idle=poll takes no HLT exits.
expect_output "boot --idle-poll: no idle HLT exits" '"idle_tick_exits": 0' boot --memory 2G --vcpus 4 --deferred-init off --idle-poll --json
printf 'kernel: {idle-poll: maybe}\n' > "$tmp/idle-poll.yaml"
expect_error "idle-poll: scenario key not a boolean" "idle-poll" run "$tmp/idle-poll.yaml"

# A workload phase as actors (issue 17 §1 goal 1, session 17): the report says so; a bad scenario value is one line.
expect_output "boot --workload-actors: the phase ran as actors" '"workload_actors": { "phases": 1' boot --memory 4G --vcpus 4 --kernel 6.12 --workload touch=512M --workload-actors --json
printf 'kernel: {workload-actors: sometimes}\n' > "$tmp/workload-actors.yaml"
expect_error "workload-actors: scenario key not a boolean" "workload-actors" run "$tmp/workload-actors.yaml"

echo "cli-checks: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
