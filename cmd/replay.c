/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "builtin.h"
int cmd_replay(int argc, char **argv) { (void)argc; (void)argv; return EXIT_USAGE; }
