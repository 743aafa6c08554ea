#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario j: differential fuzzing with the kernel as the oracle (issue 19 item 5).
# KT_J_COUNT (default 200) seeded random mutations of kernel-written images
# (`corrupt IMG mutate SEED`, tests/tools/mutate.c: one field set with its CRC made
# valid, raw bit or byte flips, a zeroed range of metadata, flipped bits of cached
# data), each judged by scenario e's machinery (e-repair.sh, run with KT_E_CASES):
# the kernel's verdict (loads / refuses / resets / crashes) must be the one
# `pcache fsck -n` predicts, a refusal must come with the reason of the first
# refusing problem, and a loaded cache must serve what our replay serves.  Every
# disagreement is a `not ok`.  Images fsck says crash the kernel are not loaded
# (they would end the boot); they are counted apart.
#
# The run seed comes from /dev/urandom unless KT_J_SEED is set; it is printed first.
# Mutation i gets the seed RUN_SEED * 65536 + i and a base image: mostly the kernel
# fixture (kfx, DATA_CRC on), else mkimage images with and without DATA_CRC (wcrc,
# w) and a fresh --data-crc format (fresh-crc).  To replay one case by hand:
#   build/tests/corrupt IMG mutate SEED   (IMG a copy of the base the case names)
# KT_J_REPAIR=1 also loads the fsck -y'd copies (as scenario e does).
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

COUNT=${KT_J_COUNT:-200}
if [ -n "${KT_J_SEED:-}" ]; then
	SEED=$KT_J_SEED
else
	SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fi
echo "# j: seed $SEED (KT_J_SEED=$SEED reproduces)"
D=$(kt_case jfuzz)

# The case lines: `mutate:SEED_i BASE - ?` (no expected codes: fsck's verdict is the prediction).
python3 - "$SEED" "$COUNT" >"$D/cases" <<'PYEOF'
import random, sys
seed, count = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
bases = ["kfx"] * 70 + ["wcrc"] * 15 + ["w"] * 10 + ["fresh-crc"] * 5
for i in range(count):
    print("mutate:%d %s - ?" % (seed * 65536 + i, rng.choice(bases)))
PYEOF

: >"$D/log"
# The table's data_crc follows the image: a mutation that flips DATA_CRC in cache_info
# is judged by what the kernel does with the table `pcache info` / `dump` tell to use.
KT_E_CASES=$D/cases KT_E_FILTER='' KT_E_NAME=j KT_E_REPAIR=${KT_J_REPAIR:-0} \
	KT_E_BASES="kfx wcrc w fresh-crc" KT_E_LOG=$D/log KT_E_CRC_FROM_IMAGE=1 \
	bash "$KT_HERE/scenarios/e-repair.sh" | tee "$D/out"

# ---- the bytes our engine serves ----
# For the first KT_J_ENGINE (default 8) kfx mutations the kernel loaded as fsck
# predicted: the image is made again, served read-only by `pcache serve` (the
# embedded engine, nbdkit), and the first 32 MiB read over NBD must be what our
# replay serves, which is what the kernel served above.
MiB=$((1 << 20))
FX=
for f in "${PCACHE_FIXTURES:-}" "$(dirname "$PCACHE")/fixtures"; do
	[ -n "$f" ] && [ -r "$f/kernel-dirty-300w.pmem" ] && FX=$f && break
done
engine_check() { # SEED
	local s=$1 img=$D/eng.img uri="" pid i t="j: mutate:$1 on kfx"
	local back=$FX/kernel-dirty-300w.back
	cp --sparse=always "$FX/kernel-dirty-300w.pmem" "$img" && chmod u+w "$img" &&
		"$(dirname "$KT_MKIMAGE")/corrupt" "$img" mutate "$s" >/dev/null || {
		kt_notok "$t: cannot make the image again for the engine"
		return
	}
	"$PCACHE" serve --readonly -q "$img" "$back" >"$D/serve.uri" 2>"$D/serve.err" &
	pid=$!
	for i in $(seq 600); do
		uri=$(head -n 1 "$D/serve.uri")
		[ -n "$uri" ] || ! kill -0 "$pid" 2>/dev/null && break
		sleep 0.1
	done
	if [ -z "$uri" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		kt_notok "$t: the kernel loads it, but pcache serve does not serve it: $(head -c 300 "$D/serve.err")"
		return
	fi
	/usr/bin/python3 - "$uri" $((32 * MiB)) "$D/eng.got" <<'PYEOF'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
n = int(sys.argv[2])
with open(sys.argv[3], "wb") as out:
    for off in range(0, n, 4 << 20):
        out.write(h.pread(min(4 << 20, n - off), off))
h.shutdown()
PYEOF
	i=$?
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ $i -ne 0 ]; then
		kt_notok "$t: reading what pcache serve serves failed"
	elif ! kt_logical "$img" "$back" $((32 * MiB)) "$D/eng.exp" nostrict >"$D/eng.err" 2>&1; then
		kt_notok "$t: our replay of the image failed: $(head -c 300 "$D/eng.err")"
	elif cmp -s "$D/eng.got" "$D/eng.exp"; then
		kt_ok "$t: our engine (pcache serve) serves what the kernel and our replay serve (32 MiB)"
	else
		kt_notok "$t: our engine (pcache serve) does not serve what the kernel and our replay serve"
		$KT_MODEL cmp "$D/eng.got" "$D/eng.exp" | sed 's/^/#   /'
	fi
	rm -f "$img" "$D/eng.got" "$D/eng.exp" "$D"/eng.exp.*
}
if [ -z "$FX" ] || ! command -v nbdkit >/dev/null || ! /usr/bin/python3 -c 'import nbd' 2>/dev/null; then
	kt_skip "j: our engine's bytes: needs the kfx fixture, nbdkit and python3-libnbd"
else
	sed -nE 's/^ok - j: mutate:([0-9]+) on kfx: corrupted, .*the kernel loads it, as fsck predicted.*/\1/p' \
		"$D/out" | head -n "${KT_J_ENGINE:-8}" >"$D/engine"
	while read -r s; do engine_check "$s"; done <"$D/engine"
fi

# ---- the summary ----
python3 - "$D/log" "$D/out" "$COUNT" >"$D/summary" <<'PYEOF'
import re, sys
log, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
cases = {}
for line in open(log):
    title, verdict, frc, first = line.rstrip("\n").split("|", 3)
    m = re.search(r"\((field|flip|zero|data): ", first)
    cases[title] = dict(pred=verdict, frc=frc, first=first, cls=m.group(1) if m else "?",
                        unchanged=": unchanged (" in first, got=None, ok=None, line="")
tre = re.compile(r"^(not )?ok - (j: mutate:\d+ on \S+): corrupted, fsck -n exit \d+: (.*)$")
for line in open(out):
    m = tre.match(line.rstrip("\n").replace("\r", ""))
    if not m or m.group(2) not in cases:
        continue
    c = cases[m.group(2)]
    k = re.search(r"the kernel (loads|refuses|resets|crashed|no result)", m.group(3))
    c["got"] = ("crashes" if k.group(1) == "crashed" else k.group(1)) if k else "?"
    c["ok"] = m.group(1) is None
    c["line"] = m.group(3)
n = len(cases)
cls = {}
for c in cases.values():
    cls[c["cls"]] = cls.get(c["cls"], 0) + 1
pred, got = {}, {}
for c in cases.values():
    pred[c["pred"]] = pred.get(c["pred"], 0) + 1
    if c["got"]:
        got[c["got"]] = got.get(c["got"], 0) + 1
judged = [c for c in cases.values() if c["ok"] is not None]
agree = sum(1 for c in judged if c["ok"])
dis = [t for t, c in cases.items() if c["ok"] is False]
crash_pred = sum(1 for c in cases.values() if c["pred"] == "crashes")
unjudged = [t for t, c in cases.items() if c["ok"] is None and c["pred"] != "crashes"]
fmt = lambda d: ", ".join("%s %d" % kv for kv in sorted(d.items())) or "none"
print("# j: %d mutations prepared (%d asked): %s" % (n, count, fmt(cls)))
print("# j: %d change no byte, %d leave fsck -n clean (exit 0)" %
      (sum(c["unchanged"] for c in cases.values()), sum(c["frc"] == "0" for c in cases.values())))
print("# j: fsck predicted: %s" % fmt(pred))
print("# j: the kernel (loaded: %d): %s; predicted crashes not loaded: %d" %
      (len(judged), fmt(got), crash_pred))
print("# j: agreements %d, disagreements %d" % (agree, len(dis)))
for t in dis:
    c = cases[t]
    print("# j: DISAGREEMENT %s: fsck predicted '%s' (exit %s); %s" % (t, c["pred"], c["frc"], c["line"]))
    print("#      mutation: %s" % c["first"])
for t in unjudged:
    print("# j: NOT JUDGED %s (fsck predicted '%s')" % (t, cases[t]["pred"]))
print("STATS %d %d %d %d %d" % (n, len(judged), crash_pred, len(dis), len(unjudged)))
PYEOF
grep -v '^STATS' "$D/summary"
read -r _ n judged crash_pred ndis nunj < <(grep '^STATS' "$D/summary")
echo "# stat: j mutations ${n:-0}"
echo "# stat: j judged_by_kernel ${judged:-0}"
echo "# stat: j crash_predicted ${crash_pred:-0}"
echo "# stat: j disagreements ${ndis:-0}"
echo "# stat: j seed $SEED"
if [ "${n:-0}" -ge "$COUNT" ] && [ "$((judged + crash_pred))" -ge "$COUNT" ] && [ "$nunj" -eq 0 ]; then
	kt_ok "j: $n mutations (seed $SEED): $judged judged by the kernel, $crash_pred predicted to crash it, $ndis disagreements"
else
	kt_notok "j: only ${judged:-0} of $COUNT mutations judged by the kernel and ${crash_pred:-0} predicted crashes (seed $SEED; $n prepared, ${nunj:-?} without a verdict)"
fi
[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$D"
