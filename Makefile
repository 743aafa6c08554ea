# SPDX-License-Identifier: GPL-2.0-or-later
# pcache-tools top-level build.  `make`, `make check`, `make bench`,
# `make install PREFIX=/usr DESTDIR=...`, `make clean`.

VERSION   := 0.1.0
LIB_MAJOR := 0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
MANDIR    ?= $(PREFIX)/share/man
DOCDIR    ?= $(PREFIX)/share/doc/pcache-tools
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC       ?= cc
O        ?= build
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASEFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fPIC -pthread -Ilibpcachemeta/include -Ilibpcachemeta -Ipcache-tools
DEP_CFLAGS := $(shell pkg-config --cflags libpmem2 json-c libndctl libdaxctl blkid 2>/dev/null)
DEP_LIBS_META := $(shell pkg-config --libs libpmem2 2>/dev/null)
DEP_LIBS_TOOLS := $(shell pkg-config --libs json-c libndctl libdaxctl blkid 2>/dev/null)
ALL_CFLAGS = $(BASEFLAGS) $(DEP_CFLAGS) -DPCACHE_VERSION='"$(VERSION)"' $(CFLAGS)

META_SRC  := $(wildcard libpcachemeta/*.c)
TOOLS_SRC := $(wildcard pcache-tools/*.c pcache-tools/engine/*.c)
CMD_SRC   := $(wildcard cmd/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
# mutate.c is a part of the corrupt tool, not a program of its own
HELPER_SRC := $(filter-out tests/tools/mutate.c,$(wildcard tests/tools/*.c))
BENCH_SRC := $(wildcard bench/bench_*.c)

META_OBJ  := $(META_SRC:%.c=$(O)/%.o)
TOOLS_OBJ := $(TOOLS_SRC:%.c=$(O)/%.o)
CMD_OBJ   := $(CMD_SRC:%.c=$(O)/%.o)

LIBA   := $(O)/libpcachemeta.a
LIBSO  := $(O)/libpcachemeta.so.$(VERSION)
TOOLSA := $(O)/libpcachetools.a
PCACHE := $(O)/pcache
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)
HELPER_BIN := $(HELPER_SRC:tests/tools/%.c=$(O)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(O)/bench/%)
CRASH_SRC := $(wildcard tests/crash/*.c)
CRASH_BIN := $(O)/tests/crash-harness

# The nbdkit plugin (pcache-tools/nbdkit/, outside TOOLS_SRC): the engine and
# libpcachemeta linked in (every object is -fPIC), only plugin_init exported.
NBDKIT_CFLAGS := $(shell pkg-config --cflags nbdkit 2>/dev/null)
NBDKIT_PLUGINDIR ?= $(or $(shell pkg-config --variable=plugindir nbdkit 2>/dev/null),$(LIBDIR)/nbdkit/plugins)
PLUGIN_SRC := $(wildcard pcache-tools/nbdkit/*.c)
PLUGIN_OBJ := $(PLUGIN_SRC:%.c=$(O)/%.o)
ENGINE_OBJ := $(patsubst %.c,$(O)/%.o,$(wildcard pcache-tools/engine/*.c))
PLUGIN := $(O)/nbdkit-pcache-plugin.so

.PHONY: all check bench install clean demo unit deps
all: $(PCACHE) $(LIBSO) $(LIBA) $(O)/libpcachemeta.pc $(UNIT_BIN) $(HELPER_BIN) $(BENCH_BIN) \
	$(PLUGIN) $(CRASH_BIN)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBA): $(META_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBSO): $(META_OBJ) libpcachemeta/libpcachemeta.sym
	$(CC) -shared -Wl,-soname,libpcachemeta.so.$(LIB_MAJOR) \
		-Wl,--version-script=libpcachemeta/libpcachemeta.sym $(CFLAGS) -pthread \
		-o $@ $(META_OBJ) $(DEP_LIBS_META)
	ln -sf libpcachemeta.so.$(VERSION) $(O)/libpcachemeta.so.$(LIB_MAJOR)
	ln -sf libpcachemeta.so.$(LIB_MAJOR) $(O)/libpcachemeta.so

$(TOOLSA): $(TOOLS_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(PLUGIN_OBJ): ALL_CFLAGS += $(NBDKIT_CFLAGS)

$(PLUGIN): $(PLUGIN_OBJ) $(ENGINE_OBJ) $(LIBA) pcache-tools/nbdkit/plugin.sym
	$(CC) -shared $(CFLAGS) -pthread -Wl,--version-script=pcache-tools/nbdkit/plugin.sym \
		-o $@ $(PLUGIN_OBJ) $(ENGINE_OBJ) $(LIBA) $(DEP_LIBS_META) -pthread

LINK_ALL = $(TOOLSA) $(LIBA) $(DEP_LIBS_TOOLS) $(DEP_LIBS_META) -pthread -lm

$(PCACHE): $(CMD_OBJ) $(TOOLSA) $(LIBA)
	$(CC) $(CFLAGS) -o $@ $(CMD_OBJ) $(LINK_ALL) -lreadline

$(O)/tests/%: $(O)/tests/unit/%.o $(TOOLSA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LINK_ALL)

$(O)/tests/%: $(O)/tests/tools/%.o $(TOOLSA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LINK_ALL)

# rangecopy runs in the kernel suite's guest: libc only
$(O)/tests/rangecopy: $(O)/tests/tools/rangecopy.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

# corrupt links the mutation generator (corrupt IMG mutate:SEED)
$(O)/tests/corrupt: $(O)/tests/tools/corrupt.o $(O)/tests/tools/mutate.o $(TOOLSA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(LINK_ALL)

# the crash-point harness (tests/crash): one program from all its sources
$(CRASH_BIN): $(CRASH_SRC:%.c=$(O)/%.o) $(TOOLSA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(CRASH_SRC:%.c=$(O)/%.o) $(LINK_ALL)

$(O)/bench/%: $(O)/bench/%.o $(TOOLSA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LINK_ALL)

# libdir and includedir relative to ${prefix} when they are under it, so that
# `pkg-config --define-prefix` relocates a DESTDIR install.
PC_REL = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call PC_REL,$(LIBDIR))|' \
	     -e 's|@INCDIR@|$(call PC_REL,$(INCDIR))|' -e 's|@VERSION@|$(VERSION)|'

$(O)/libpcachemeta.pc: libpcachemeta/libpcachemeta.pc.in Makefile
	$(PC_SED) $< > $@

# check, demo and bench first install what is missing (scripts/deps.sh), then
# build in a sub-make so that pkg-config, installed or not at parse time, is used.
SUBMAKE = $(MAKE) --no-print-directory $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 2))

deps:
	@sh scripts/deps.sh

check: deps
	@$(SUBMAKE) all
	@bash tests/run-tests.sh $(O)

unit: all
	tests/run-tests.sh $(O) unit

bench: deps
	@$(SUBMAKE) all
	@bash bench/run-bench.sh $(O)

demo: deps
	@$(SUBMAKE) all
	@bash scripts/demo.sh $(O)

# The kernel interop suite: the real dm-pcache of Debian sid's kernel in a qemu guest
# (tests/kernel/run.sh; needs root; caches its chroot, kernel and module in
# /var/cache/pcache-tools-kernel).
.PHONY: check-kernel
check-kernel: deps
	@$(SUBMAKE) all
	@bash tests/kernel/run.sh $(O)

# Rewrites the golden fsck transcripts (tests/fsck/*/expect.*) with the pcache just built;
# review the change with git diff (tests/fsck/README.md).
.PHONY: fsck-expect
fsck-expect: all
	@bash tests/fsck/regen.sh $(O)

# The .pc is written again here: PREFIX/LIBDIR given to `make install` may differ from the build's.
install: $(PCACHE) $(LIBSO) $(LIBA) $(PLUGIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(PCACHE) $(DESTDIR)$(BINDIR)/pcache
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/libpcachemeta.a
	install -m 755 $(LIBSO) $(DESTDIR)$(LIBDIR)/libpcachemeta.so.$(VERSION)
	ln -sf libpcachemeta.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpcachemeta.so.$(LIB_MAJOR)
	ln -sf libpcachemeta.so.$(LIB_MAJOR) $(DESTDIR)$(LIBDIR)/libpcachemeta.so
	install -m 644 libpcachemeta/include/pcachemeta.h $(DESTDIR)$(INCDIR)/pcachemeta.h
	$(PC_SED) libpcachemeta/libpcachemeta.pc.in > $(O)/libpcachemeta.pc.install
	install -m 644 $(O)/libpcachemeta.pc.install $(DESTDIR)$(PKGCONFIGDIR)/libpcachemeta.pc
	install -m 644 doc/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 completion/pcache.bash $(DESTDIR)$(BASHCOMPDIR)/pcache
	install -d $(DESTDIR)$(NBDKIT_PLUGINDIR)
	install -m 755 $(PLUGIN) $(DESTDIR)$(NBDKIT_PLUGINDIR)/nbdkit-pcache-plugin.so

clean:
	rm -rf $(O)

# ---- fuzzing (issue 10): libFuzzer targets built with clang-14, ASan and UBSan ----
# `make fuzz FUZZ_SECONDS=N` builds $(O)/fuzz/fuzz_* and runs each for N seconds
# (tests/fuzz/run-fuzz.sh: seed corpus, executions and exec/s, findings).
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(BASEFLAGS) $(DEP_CFLAGS) -DPCACHE_VERSION='"$(VERSION)"' -O1 -g $(FUZZ_SAN) \
		-fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist=tests/fuzz/coverage-ignore.txt \
		-fsanitize-ignorelist=tests/fuzz/sanitize-ignore.txt \
		-Icmd -Itests/fuzz
FZ           := $(O)/fuzz
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_MAIN    := $(filter-out tests/fuzz/fuzz_common.c,$(FUZZ_SRC))
FUZZ_BIN     := $(FUZZ_MAIN:tests/fuzz/%.c=$(FZ)/%)
FUZZ_META    := $(META_SRC:%.c=$(FZ)/obj/%.o) $(FZ)/obj/tests/fuzz/fuzz_common.o
FUZZ_TOOLS   := $(TOOLS_SRC:%.c=$(FZ)/obj/%.o) $(CMD_SRC:%.c=$(FZ)/obj/%.o)

.PHONY: fuzz fuzz-build
.SECONDARY: $(FUZZ_MAIN:%.c=$(FZ)/obj/%.o)
fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@bash tests/fuzz/run-fuzz.sh $(O) $(FUZZ_SECONDS)

$(FZ)/obj/%.o: %.c tests/fuzz/coverage-ignore.txt tests/fuzz/sanitize-ignore.txt
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_EXTRA) -MMD -MP -c $< -o $@

# the pcache program's main would clash with libFuzzer's: fuzz_dump calls cmd_dump()
$(FZ)/obj/cmd/pcache.o: FUZZ_EXTRA = -Dmain=pcache_main -Wno-missing-prototypes

$(FZ)/fuzz_dump: $(FZ)/obj/tests/fuzz/fuzz_dump.o $(FUZZ_TOOLS) $(FUZZ_META)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(DEP_LIBS_TOOLS) $(DEP_LIBS_META) \
		-lreadline -pthread -lm

$(FZ)/fuzz_%: $(FZ)/obj/tests/fuzz/fuzz_%.o $(FUZZ_META)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(DEP_LIBS_META) -pthread -lm

-include $(shell find $(O) -name '*.d' 2>/dev/null)
