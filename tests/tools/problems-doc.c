/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * problems-doc: prints the fsck problem table as markdown, straight from
 * pcm_problem_def(), so doc/problems.md can be regenerated and compared with
 * the code (tests/bats/docs.bats).
 *
 *   problems-doc              print the table on stdout
 *   problems-doc --update F   replace the text between the markers in F
 *                             (<!-- BEGIN problems-doc --> / <!-- END problems-doc -->)
 *
 * Exit 0 on success, 1 when the problem table is inconsistent or F cannot be
 * updated, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcachemeta.h"

#define BEGIN_MARK "<!-- BEGIN problems-doc -->"
#define END_MARK   "<!-- END problems-doc -->"

/* Markdown table cell: '|' would end the cell, so it is escaped. */
static void cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static int table(FILE *f)
{
	int bad = 0;

	fputs("| code | severity | the kernel | safe to fix automatically | summary |\n", f);
	fputs("|---|---|---|---|---|\n", f);
	for (int i = 0; i < PCM_P_COUNT; i++) {
		const struct pcm_problem_def *d = pcm_problem_def((enum pcm_problem_code)i);

		if (!d || !d->name || !*d->name || !d->summary || !*d->summary) {
			fprintf(stderr, "problems-doc: problem code %d has no definition\n", i);
			bad = 1;
			continue;
		}
		fprintf(f, "| `%s` | %s | ", d->name, d->remark ? "remark" : pcm_severity_str(d->severity));
		cell(f, pcm_kernel_reaction_str(d->kernel));
		fprintf(f, " | %s | ", d->safe_fix ? "yes" : "no");
		cell(f, d->summary);
		fputs(" |\n", f);
	}
	return bad;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = 0;
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* Rewrites PATH: everything up to the BEGIN marker line, the table, the END marker on. */
static int update(const char *path)
{
	size_t len = 0;
	char *doc = slurp(path, &len), *begin, *end, *tmp;
	FILE *f;
	int rc = 1;

	if (!doc) {
		perror(path);
		return 1;
	}
	begin = strstr(doc, BEGIN_MARK "\n");
	end = begin ? strstr(begin, "\n" END_MARK) : NULL;
	if (!begin || !end) {
		fprintf(stderr, "problems-doc: %s: markers '%s' and '%s' not found, each on its own line\n",
			path, BEGIN_MARK, END_MARK);
		free(doc);
		return 1;
	}
	tmp = malloc(strlen(path) + 5);
	if (!tmp) {
		free(doc);
		return 1;
	}
	sprintf(tmp, "%s.new", path);
	f = fopen(tmp, "wb");
	if (f) {
		fwrite(doc, 1, (size_t)(begin - doc) + strlen(BEGIN_MARK "\n"), f);
		rc = table(f);
		fputs(end + 1, f);
		if (fclose(f) != 0)
			rc = 1;
		if (!rc && rename(tmp, path) != 0) {
			perror(path);
			rc = 1;
		}
		if (rc)
			remove(tmp);
	} else {
		perror(tmp);
	}
	free(tmp);
	free(doc);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 1)
		return table(stdout) || fflush(stdout) != 0;
	if (argc == 3 && !strcmp(argv[1], "--update"))
		return update(argv[2]);
	fprintf(stderr, "usage: problems-doc [--update FILE]\n");
	return 2;
}
