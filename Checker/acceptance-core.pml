/*
 * The acceptance core in Promela: the second opinion on cocomem's checker
 * (issue 20, section 3). It is Sources/Checking/AcceptanceCore/ variable for
 * variable and step for step (docs/CHECKER.md, "The Promela model"): one
 * process whose loop offers every action of the Swift model as one d_step,
 * guarded by the same enabling condition, so a spin state is a Swift state
 * (the process's own program counter is always the loop head) and spin's
 * "states, stored" is the Swift checker's state count with symmetry off.
 *
 * Parameters (spin -D...): V vCPUs (1-3), R ranges (1-3), K pages per range
 * (1-4), MAP2M (1: AUG at the accept level, 0: at 4K), SPLITS, CONVS, ZAPS
 * (host budgets), LIST (the accepting list), TRUST (ALREADY_ACCEPTED taken as
 * success), BOUND (ACCEPT calls one accept may take). INV selects the
 * invariant asserted after every step (1-7, in AcceptanceCore.invariants'
 * order); 0 asserts none (the state count run).
 */
#ifndef V
#define V 2
#endif
#ifndef R
#define R 2
#endif
#ifndef K
#define K 2
#endif
#ifndef MAP2M
#define MAP2M 1
#endif
#ifndef SPLITS
#define SPLITS 1
#endif
#ifndef CONVS
#define CONVS 0
#endif
#ifndef ZAPS
#define ZAPS 0
#endif
#ifndef LIST
#define LIST 1
#endif
#ifndef TRUST
#define TRUST 0
#endif
#ifndef BOUND
#define BOUND 12
#endif
#ifndef REFUSE
#define REFUSE 0
#endif
#ifndef INV
#define INV 0
#endif
/* NPC=1: progress labels after every progress step (AcceptanceCore.isProgress),
 * for spin's non-progress cycles (gcc -DNP, pan -l). They add control states,
 * so the state count is compared with NPC=0 only. */
#ifndef NPC
#define NPC 0
#endif

/* S-EPT entry states (AcceptanceCore.Entry) */
#define FREE 0
#define PEND 1
#define MAPD 2
#define PBLK 3
#define BLK 4
#define NLMAP 5
#define NLBLK 6
/* mirror (AcceptanceCore.Mirror) */
#define MNONE 0
#define M2M 1
#define MFROZEN 2
#define M4K 3
/* fatal (AcceptanceCore.Fatal) */
#define TOUCHED 1
#define FAILED 2
#define DOUBLE 3
/* vCPU phase (AcceptanceCore.Phase) */
#define CHECK 0
#define A2M 1
#define A4K 2
#define FIN 3

/* Per range (arrays sized for the largest configuration; entries past R
 * stay constant and never change the state count). */
byte bitmap[3] = 1;    /* every range unaccepted (entries past R unused) */
byte listed[3];
byte e2[3];
byte mirror[3];
byte tracked[3];
byte shared[3];
byte written[3];
byte page[12];          /* page r*4+k */
/* Per vCPU */
byte pc[3];
byte phase[3];
byte sub[3];
byte waiting[3];
byte att[3];
/* Host budgets and the TD's fate */
byte splitsLeft = SPLITS;
byte convsLeft = CONVS;
byte zapsLeft = ZAPS;
byte fatal;

/* Scratch of one step, zeroed at its end (check()), so they are 0 in every
 * stored state and add nothing to the count (not `hidden`: pan -DBFS
 * refuses hidden variables). */
byte r, k, child;

#define PG(rr, kk) page[(rr) * 4 + (kk)]
#define BLOCKEDLEAF(e) ((e) == PBLK || (e) == BLK)
#define LEAF2M(e) ((e) == PEND || (e) == MAPD)
#define ISTABLE(e) ((e) == NLMAP || (e) == NLBLK)
#define RANGE(v) (pc[v] / 2)
#define INPROGRAM(v) (pc[v] < 2 * R)
#define SPLITTING (BLOCKEDLEAF(e2[0]) || (R > 1 && BLOCKEDLEAF(e2[1])) || (R > 2 && BLOCKEDLEAF(e2[2])))

/* AcceptanceCore.vcpuEnabled */
#define VCPU_ENABLED(v) (v < V && fatal == 0 && INPROGRAM(v) && !waiting[v] && \
    (pc[v] % 2 == 0 -> !(phase[v] == CHECK && bitmap[RANGE(v)] && LIST && listed[RANGE(v)]) \
                     : (shared[RANGE(v)] || !(BLOCKEDLEAF(e2[RANGE(v)]) || e2[RANGE(v)] == NLBLK))))
/* AcceptanceCore.eptEnabled */
#define EPT_ENABLED(v) (v < V && fatal == 0 && !SPLITTING && waiting[v] && INPROGRAM(v) && !shared[RANGE(v)] && \
    !(BLOCKEDLEAF(e2[RANGE(v)]) || e2[RANGE(v)] == NLBLK) && !(phase[v] == A4K && LEAF2M(e2[RANGE(v)])))
#define WAITS4K(v, rr) (v < V && waiting[v] && phase[v] == A4K && INPROGRAM(v) && RANGE(v) == rr)
#define DEMANDED(rr) (WAITS4K(0, rr) || WAITS4K(1, rr) || WAITS4K(2, rr))
#define WAITSON(v, rr) (v < V && waiting[v] && INPROGRAM(v) && RANGE(v) == rr)
#define SOMEONEWAITS(rr) (WAITSON(0, rr) || WAITSON(1, rr) || WAITSON(2, rr))
#define ALLMAPPED(rr) (PG(rr, 0) == MAPD && (K < 2 || PG(rr, 1) == MAPD) && (K < 3 || PG(rr, 2) == MAPD) && (K < 4 || PG(rr, 3) == MAPD))
#define ACCESSIBLE(rr) (e2[rr] == MAPD || (e2[rr] == NLMAP && ALLMAPPED(rr)))

/* The invariants, AcceptanceCore.violations */
#define INARCH(v) (v < V && pc[v] % 2 == 0 && INPROGRAM(v) && phase[v] != CHECK)
#define CLASH(v, w) (INARCH(v) && INARCH(w) && pc[v] == pc[w])
#define PAGESFREE(rr) (PG(rr, 0) == 0 && PG(rr, 1) == 0 && PG(rr, 2) == 0 && PG(rr, 3) == 0)
#define NODOUBLE(rr) (rr >= R || ISTABLE(e2[rr]) || PAGESFREE(rr))
#define AGREES(rr) (rr >= R || \
    (mirror[rr] == MNONE -> e2[rr] == FREE : \
    (mirror[rr] == M2M -> LEAF2M(e2[rr]) : \
    (mirror[rr] == MFROZEN -> BLOCKEDLEAF(e2[rr]) : ISTABLE(e2[rr])))))
#define PROGRESS(v) (v >= V || att[v] <= BOUND)

inline check() {
    r = 0; k = 0; child = 0;
#if INV == 1
    assert(fatal != TOUCHED);
#elif INV == 2
    assert(fatal != FAILED);
#elif INV == 3
    assert(fatal != DOUBLE);
#elif INV == 4
    assert(!LIST || !(CLASH(0, 1) || CLASH(0, 2) || CLASH(1, 2)));
#elif INV == 5
    assert(NODOUBLE(0) && NODOUBLE(1) && NODOUBLE(2));
#elif INV == 6
    assert(AGREES(0) && AGREES(1) && AGREES(2));
#elif INV == 7
    assert(PROGRESS(0) && PROGRESS(1) && PROGRESS(2));
#else
    skip;
#endif
}

inline countAttempt(v) {
    if
    :: att[v] < BOUND + 1 -> att[v]++
    :: else -> skip
    fi
}

inline nextPage(v) {
    if
    :: sub[v] + 1 < K -> sub[v]++
    :: else -> sub[v] = 0; phase[v] = FIN
    fi
}

/* ALREADY_ACCEPTED (or SIZE_MISMATCH) at 4K */
inline refused4K(v) {
    if
    :: TRUST -> nextPage(v)
    :: else -> fatal = FAILED
    fi
}

/* AcceptanceCore.step */
inline step(v) {
    r = RANGE(v);
    if
    :: pc[v] % 2 == 1 ->
        /* touch */
        if
        :: shared[r] -> pc[v]++
        :: else ->
            if
            :: ACCESSIBLE(r) -> written[r] = 1; pc[v]++
            :: else -> fatal = TOUCHED
            fi
        fi
    :: else ->
        if
        :: phase[v] == CHECK ->
            if
            :: !bitmap[r] -> pc[v]++
            :: else ->
                if
                :: LIST -> listed[r] = 1
                :: else -> skip
                fi;
                phase[v] = A2M; att[v] = 0
            fi
        :: phase[v] == A2M ->
            countAttempt(v);
            if
            :: e2[r] == FREE || e2[r] == BLK || e2[r] == PBLK -> waiting[v] = 1
            :: e2[r] == NLMAP || e2[r] == NLBLK -> phase[v] = A4K; sub[v] = 0
            :: e2[r] == MAPD ->
                if
                :: TRUST -> phase[v] = FIN
                :: else -> phase[v] = A4K; sub[v] = 0
                fi
            :: e2[r] == PEND ->
                e2[r] = MAPD;
                if
                :: written[r] -> fatal = DOUBLE
                :: else -> skip
                fi;
                phase[v] = FIN
            fi
        :: phase[v] == A4K ->
            countAttempt(v);
            k = sub[v];
            if
            :: e2[r] == MAPD -> refused4K(v)
            :: e2[r] == NLMAP && PG(r, k) == PEND ->
                PG(r, k) = MAPD;
                if
                :: written[r] -> fatal = DOUBLE
                :: else -> skip
                fi;
                nextPage(v)
            :: e2[r] == NLMAP && PG(r, k) == MAPD -> refused4K(v)
            :: else -> waiting[v] = 1
            fi
        :: phase[v] == FIN ->
            bitmap[r] = 0;
            if
            :: LIST -> listed[r] = 0
            :: else -> skip
            fi;
            phase[v] = CHECK; att[v] = 0; pc[v]++
        fi
    fi;
    check()
}

/* AcceptanceCore.handleEPTViolation */
inline ept(v) {
    r = RANGE(v);
    if
    :: phase[v] == A2M -> k = 0
    :: else -> k = sub[v]
    fi;
    if
    :: e2[r] == FREE ->
        if
        :: phase[v] == A2M && MAP2M -> e2[r] = PEND; mirror[r] = M2M
        :: else ->
            e2[r] = NLMAP;
            PG(r, 0) = 0; PG(r, 1) = 0; PG(r, 2) = 0; PG(r, 3) = 0;
            PG(r, k) = PEND; mirror[r] = M4K
        fi
    :: e2[r] == NLMAP ->
        if
        :: PG(r, k) == FREE -> PG(r, k) = PEND
        :: else -> skip
        fi
    :: else -> skip
    fi;
    waiting[v] = 0;
    check()
}

inline removePrivate(rr) {
    e2[rr] = FREE;
    PG(rr, 0) = 0; PG(rr, 1) = 0; PG(rr, 2) = 0; PG(rr, 3) = 0;
    mirror[rr] = MNONE; tracked[rr] = 0
}

/* The host's and the VMM's steps on range rr */
#define BLOCK_ENABLED(rr) (rr < R && fatal == 0 && !SPLITTING && LEAF2M(e2[rr]) && (splitsLeft > 0 || DEMANDED(rr)))
#define TRACK_ENABLED(rr) (rr < R && fatal == 0 && BLOCKEDLEAF(e2[rr]) && !tracked[rr])
#define DEMOTE_ENABLED(rr) (rr < R && fatal == 0 && BLOCKEDLEAF(e2[rr]) && tracked[rr])
#define SHARE_ENABLED(rr) (rr < R && fatal == 0 && !SPLITTING && convsLeft > 0 && !shared[rr] && !bitmap[rr] && !listed[rr])
#define PRIVATE_ENABLED(rr) (rr < R && fatal == 0 && !SPLITTING && shared[rr] && SOMEONEWAITS(rr))
#define ZAP_ENABLED(rr) (rr < R && fatal == 0 && !SPLITTING && zapsLeft > 0 && !shared[rr] && e2[rr] != FREE)

inline block(rr) {
    if
    :: !DEMANDED(rr) -> splitsLeft--
    :: else -> skip
    fi;
    if
    :: e2[rr] == PEND -> e2[rr] = PBLK
    :: else -> e2[rr] = BLK
    fi;
    mirror[rr] = MFROZEN;
    check()
}

inline demote(rr) {
    if
    :: e2[rr] == PBLK -> child = PEND
    :: else -> child = MAPD
    fi;
    e2[rr] = NLMAP;
    PG(rr, 0) = child;
    if :: K > 1 -> PG(rr, 1) = child :: else -> skip fi;
    if :: K > 2 -> PG(rr, 2) = child :: else -> skip fi;
    if :: K > 3 -> PG(rr, 3) = child :: else -> skip fi;
    mirror[rr] = M4K; tracked[rr] = 0;
    check()
}

#define HOST(rr) \
    :: d_step { BLOCK_ENABLED(rr) -> block(rr) } \
    :: d_step { TRACK_ENABLED(rr) -> tracked[rr] = 1; check() } \
    :: d_step { DEMOTE_ENABLED(rr) -> demote(rr) } \
    :: d_step { SHARE_ENABLED(rr) -> convsLeft--; removePrivate(rr); shared[rr] = 1; written[rr] = 0; check() } \
    :: d_step { PRIVATE_ENABLED(rr) -> shared[rr] = 0; check() } \
    :: d_step { ZAP_ENABLED(rr) -> zapsLeft--; removePrivate(rr); check() }

/* AcceptanceCore.isProgress: a touch, a range skipped, an accept_memory() that returns */
#define PROGRESS_STEP(v) (pc[v] % 2 == 1 || phase[v] == FIN || (phase[v] == CHECK && !bitmap[RANGE(v)]))

/* refuse-aug: the fault path returns without AUG; the vCPU's ACCEPT faults again */
#define REFUSED(v) :: d_step { REFUSE && EPT_ENABLED(v) -> waiting[v] = 0; check() }

#if NPC
#define VCPU(v) \
    :: d_step { VCPU_ENABLED(v) && !PROGRESS_STEP(v) -> step(v) } \
    :: d_step { VCPU_ENABLED(v) && PROGRESS_STEP(v) -> step(v) }; progress_vcpu##v: skip
#else
#define VCPU(v) :: d_step { VCPU_ENABLED(v) -> step(v) }
#endif

active proctype core() {
end:
    do
    VCPU(0)
    VCPU(1)
    VCPU(2)
    :: d_step { EPT_ENABLED(0) -> ept(0) }
    :: d_step { EPT_ENABLED(1) -> ept(1) }
    :: d_step { EPT_ENABLED(2) -> ept(2) }
    REFUSED(0)
    REFUSED(1)
    REFUSED(2)
    HOST(0)
    HOST(1)
    HOST(2)
    od
}
