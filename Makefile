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
DEP_CFLAGS := $(shell pkg-config --cflags libpmem2 json-c libndctl libdaxctl 2>/dev/null)
DEP_LIBS_META := $(shell pkg-config --libs libpmem2 2>/dev/null)
DEP_LIBS_TOOLS := $(shell pkg-config --libs json-c libndctl libdaxctl 2>/dev/null)
ALL_CFLAGS = $(BASEFLAGS) $(DEP_CFLAGS) -DPCACHE_VERSION='"$(VERSION)"' $(CFLAGS)

META_SRC  := $(wildcard libpcachemeta/*.c)
TOOLS_SRC := $(wildcard pcache-tools/*.c pcache-tools/engine/*.c)
CMD_SRC   := $(wildcard cmd/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
HELPER_SRC := $(wildcard tests/tools/*.c)
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

.PHONY: all check bench install clean demo unit deps
all: $(PCACHE) $(LIBSO) $(LIBA) $(O)/libpcachemeta.pc $(UNIT_BIN) $(HELPER_BIN) $(BENCH_BIN)

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

LINK_ALL = $(TOOLSA) $(LIBA) $(DEP_LIBS_TOOLS) $(DEP_LIBS_META) -pthread -lm

$(PCACHE): $(CMD_OBJ) $(TOOLSA) $(LIBA)
	$(CC) $(CFLAGS) -o $@ $(CMD_OBJ) $(LINK_ALL) -lreadline

$(O)/tests/%: $(O)/tests/unit/%.o $(TOOLSA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LINK_ALL)

$(O)/tests/%: $(O)/tests/tools/%.o $(TOOLSA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LINK_ALL)

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

# The .pc is written again here: PREFIX/LIBDIR given to `make install` may differ from the build's.
install: $(PCACHE) $(LIBSO) $(LIBA)
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

clean:
	rm -rf $(O)

-include $(shell find $(O) -name '*.d' 2>/dev/null)
