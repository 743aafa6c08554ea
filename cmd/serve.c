/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pcache serve: the cache as an NBD export, through nbdkit and the pcache
 * plugin (pcache-tools/nbdkit), without the kernel module.
 *
 * nbdkit runs in the foreground as our child (--exit-with-parent: it dies
 * with us), on a Unix socket in a private directory or on a loopback TCP
 * port.  Its pid file appears once its socket is bound, after the plugin
 * opened the cache (replay and checks done): then the NBD URI is printed on
 * stdout.  Its stderr goes through us: its error lines become our one-line
 * errors (`pcache serve: DEV: what: why`).  SIGINT, SIGTERM and SIGHUP are
 * passed on to nbdkit as SIGTERM; it closes the engine (every open kset
 * written) and exits, and so do we.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "verdict.h"

#define PLUGIN_FILE "nbdkit-pcache-plugin.so"

static const char usage_text[] =
	"usage: pcache serve [--socket PATH | --port N [--ip ADDR]] [--readonly]\n"
	"                    [--gc-percent N] [-q] [-v] DEV BACKING\n\n"
	"Serves BACKING through the cache DEV as an NBD export, without the kernel module:\n"
	"nbdkit with the pcache plugin runs the embedded engine (what dm-pcache does: the\n"
	"kernel's replay at start, write-back caching, background writeback and GC, FLUSH\n"
	"and FUA).  A cache the kernel loads but would then damage by writing is served\n"
	"read-only, and says why.  Prints the NBD URI on stdout once the server accepts\n"
	"connections, and runs until SIGINT or SIGTERM, then closes the cache cleanly.\n"
	"Exit: 0 stopped cleanly, 8 error (nbdkit or the plugin missing, a cache the\n"
	"kernel would not load, a busy device, failed final flush), 16 usage.\n\n"
	"  --socket PATH      the Unix socket to listen on (default: a new private\n"
	"                     directory in $XDG_RUNTIME_DIR, $TMPDIR or /tmp)\n"
	"  --port N           listen on TCP port N instead, on the loopback address\n"
	"  --ip ADDR          with --port: the address to listen on (default 127.0.0.1)\n"
	"  --readonly         open DEV and BACKING read-only; the export is read-only\n"
	"  --gc-percent N     set the cache's GC threshold (0-90) first, as\n"
	"                     'dmsetup message DEV 0 gc_percent N' does\n"
	"  -q, --quiet        print nothing but the URI and errors\n"
	"  -v, --verbose      print the nbdkit command line and nbdkit's debug messages\n";

struct serve_args {
	const char *socket, *ip;
	unsigned port;
	int gc_percent;
	bool readonly;
	const char *dev, *backing;
	char dev_abs[PATH_MAX], backing_abs[PATH_MAX];
};

struct serve {
	const struct serve_args *a;
	char dir[PATH_MAX];           /* private directory: pid file, default socket */
	char pidfile[PATH_MAX + 16];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char plugin[PATH_MAX + sizeof(PLUGIN_FILE)];
	char uri[PATH_MAX * 3 + 64];
	pid_t pid;
	int err_fd;                   /* nbdkit's stderr (and stdout) */
	char line[4096];
	size_t line_len;
	bool ready;
	bool served_ro;               /* the plugin serves the cache read-only (its damage) */
};

static volatile sig_atomic_t got_signal, n_signals;

static void on_signal(int sig)
{
	got_signal = sig;
	n_signals++;
}

static int parse(int argc, char **argv, struct serve_args *a)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "port", required_argument, NULL, 'p' },
		{ "ip", required_argument, NULL, 'i' },
		{ "readonly", no_argument, NULL, 'r' },
		{ "gc-percent", required_argument, NULL, 'g' },
		COMMON_LONGOPTS, { 0 }
	};
	uint64_t v;
	int c, rc;

	while ((c = getopt_long(argc, argv, "qvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'S': a->socket = optarg; break;
		case 'i': a->ip = optarg; break;
		case 'r': a->readonly = true; break;
		case 'p':
			if (cli_parse_uint(optarg, 65535, &v) || !v)
				return cli_usage_error("--port: '%s' is not a port number (1-65535)",
						       optarg);
			a->port = (unsigned)v;
			break;
		case 'g':
			if (cli_parse_uint(optarg, PCM_GC_PERCENT_MAX, &v))
				return cli_usage_error("--gc-percent: '%s' is not a number from 0 to %u",
						       optarg, PCM_GC_PERCENT_MAX);
			a->gc_percent = (int)v;
			break;
		default:
			rc = cmd_common_opt(c, usage_text);
			if (rc != -2)
				return rc < 0 ? EXIT_USAGE : rc;
		}
	}
	if (a->socket && a->port)
		return cli_usage_error("--socket and --port exclude each other");
	if (a->ip && !a->port)
		return cli_usage_error("--ip needs --port");
	if (a->readonly && a->gc_percent >= 0)
		return cli_usage_error("--gc-percent changes the cache: not with --readonly");
	if (argc - optind != 2)
		return cli_usage_error(argc - optind < 2 ? "missing DEV or BACKING" :
				       "too many arguments");
	a->dev = argv[optind];
	a->backing = argv[optind + 1];
	return -2;
}

/*
 * Before nbdkit opens anything, in the words of the other commands: the cache given as its
 * own backing device (a usage error), a backing device that cannot be used, and a DEV that
 * is not a pcache device or is truncated.  The plugin judges the rest as the kernel does.
 */
static int precheck(const struct serve_args *a)
{
	struct cli_backing bk = { 0 };
	enum cli_sb_kind kind;
	struct pcm_dev *dev;
	char why[256];
	int rc;

	cli_backing_opt(&bk, a->backing, false);
	rc = cli_backing_resolve(&bk, a->dev);
	if (rc != -2)
		return rc;
	rc = cli_open_dev(a->dev, PCM_DEV_RDONLY | PCM_DEV_NOMAP, &dev);
	if (rc)
		return rc;
	kind = cli_sb_words(dev, why, sizeof(why));
	pcm_dev_close(dev);
	if (kind == CLI_SB_OK)
		return EXIT_OK;
	cli_err(a->dev, "%s", why);
	if (kind == CLI_SB_BAD)
		cli_hint("run 'pcache fsck -n %s' for details", a->dev);
	return EXIT_OPERATIONAL;
}

/* DEV and BACKING exist: nbdkit gets absolute paths (it may change directory). */
static int resolve(struct serve_args *a)
{
	if (!realpath(a->dev, a->dev_abs)) {
		cli_err(a->dev, "cannot open: %s", strerror(errno));
		return EXIT_OPERATIONAL;
	}
	if (!realpath(a->backing, a->backing_abs)) {
		cli_err(a->backing, "cannot open: %s", strerror(errno));
		return EXIT_OPERATIONAL;
	}
	return precheck(a);
}

/* The plugin built next to this binary, else $PCACHE_NBDKIT_PLUGIN, else nbdkit's own. */
static void find_plugin(struct serve *s)
{
	const char *env = getenv("PCACHE_NBDKIT_PLUGIN");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(s->plugin, sizeof(s->plugin), "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash) {
			slash[1] = 0;
			snprintf(s->plugin, sizeof(s->plugin), "%s%s", exe, PLUGIN_FILE);
			if (!access(s->plugin, R_OK))
				return;
		}
	}
	/* installed: nbdkit finds "pcache" in its plugin directory */
	snprintf(s->plugin, sizeof(s->plugin), "pcache");
}

static int make_dir(struct serve *s)
{
	const char *bases[] = { getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp" };

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		const char *b = bases[i];

		if (!b || *b != '/' || access(b, W_OK | X_OK))
			continue;
		/* the default socket must fit in sun_path */
		if (strlen(b) + sizeof("/pcache-serve.XXXXXX/nbd.sock") > sizeof(s->sock))
			continue;
		snprintf(s->dir, sizeof(s->dir), "%s/pcache-serve.XXXXXX", b);
		if (mkdtemp(s->dir))
			return EXIT_OK;
	}
	s->dir[0] = 0;
	cli_err(NULL, "cannot create a private directory for the socket: %s", strerror(errno));
	return EXIT_OPERATIONAL;
}

/* --socket PATH: refuse one in use; a dead socket left by an earlier server is removed. */
static int check_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return EXIT_OK;
		cli_err(path, "%s", strerror(errno));
		return EXIT_OPERATIONAL;
	}
	if (!S_ISSOCK(st.st_mode)) {
		cli_err(path, "exists and is not a socket");
		return EXIT_OPERATIONAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		cli_err(path, "socket: %s", strerror(errno));
		return EXIT_OPERATIONAL;
	}
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (!rc) {
		cli_err(path, "in use: another server listens on it");
		return EXIT_OPERATIONAL;
	}
	if (unlink(path)) {
		cli_err(path, "cannot remove the stale socket: %s", strerror(errno));
		return EXIT_OPERATIONAL;
	}
	return EXIT_OK;
}

/* Percent-encodes what may not stand in a URI query value (RFC 3986). */
static void uri_escape(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = 0;
}

static int prepare(struct serve *s)
{
	const struct serve_args *a = s->a;
	char esc[sizeof(s->uri) - 32];
	int rc = make_dir(s);

	if (rc)
		return rc;
	snprintf(s->pidfile, sizeof(s->pidfile), "%s/nbdkit.pid", s->dir);
	if (a->port) {
		const char *ip = a->ip ? a->ip : "127.0.0.1";
		bool v6 = strchr(ip, ':') != NULL;

		snprintf(s->uri, sizeof(s->uri), "nbd://%s%s%s:%u", v6 ? "[" : "", ip,
			 v6 ? "]" : "", a->port);
		return EXIT_OK;
	}
	if (a->socket) {
		if (strlen(a->socket) >= sizeof(s->sock)) {
			cli_err(a->socket, "socket path longer than %zu bytes", sizeof(s->sock) - 1);
			return EXIT_OPERATIONAL;
		}
		rc = check_socket(a->socket);
		if (rc)
			return rc;
		memcpy(s->sock, a->socket, strlen(a->socket) + 1);
	} else {
		/* make_dir() left room for it */
		memcpy(s->sock, s->dir, strlen(s->dir));
		memcpy(s->sock + strlen(s->dir), "/nbd.sock", sizeof("/nbd.sock"));
	}
	uri_escape(s->sock, esc, sizeof(esc));
	snprintf(s->uri, sizeof(s->uri), "nbd+unix:///?socket=%s", esc);
	return EXIT_OK;
}

static void cleanup(struct serve *s)
{
	if (s->sock[0])
		unlink(s->sock);   /* nbdkit leaves its socket behind */
	if (s->pidfile[0])
		unlink(s->pidfile);
	if (s->dir[0])
		rmdir(s->dir);
}

/* ---- nbdkit ---- */

struct argv_buf {
	char *v[32];
	int n;
	char params[4][PATH_MAX + 16];
	char port[16];
};

static void build_argv(const struct serve *s, struct argv_buf *b)
{
	const struct serve_args *a = s->a;
	const char *nbdkit = getenv("PCACHE_NBDKIT");
	int p = 0;

	b->n = 0;
#define ARG(x) (b->v[b->n++] = (char *)(x))
	ARG(nbdkit && *nbdkit ? nbdkit : "nbdkit");
	ARG("--foreground");
	ARG("--exit-with-parent");
	/*
	 * One worker thread per connection: nbdkit 1.32 (Debian 12) aborts on an
	 * assertion (raw_send_socket: sock >= 0) when a client goes away while two
	 * threads of its connection are replying.  Connections still run in parallel.
	 */
	ARG("--threads=1");
	ARG("--pidfile");
	ARG(s->pidfile);
	if (a->readonly)
		ARG("--readonly");
	if (cli.verbose)
		ARG("--verbose");
	if (a->port) {
		snprintf(b->port, sizeof(b->port), "%u", a->port);
		ARG("--ipaddr");
		ARG(a->ip ? a->ip : "127.0.0.1");
		ARG("--port");
		ARG(b->port);
	} else {
		ARG("--unix");
		ARG(s->sock);
	}
	ARG(s->plugin);
	snprintf(b->params[p], sizeof(b->params[p]), "cache=%s", a->dev_abs);
	ARG(b->params[p++]);
	snprintf(b->params[p], sizeof(b->params[p]), "backing=%s", a->backing_abs);
	ARG(b->params[p++]);
	if (a->readonly)
		ARG("readonly=true");
	if (a->gc_percent >= 0) {
		snprintf(b->params[p], sizeof(b->params[p]), "gc_percent=%d", a->gc_percent);
		ARG(b->params[p++]);
	}
	b->v[b->n] = NULL;
#undef ARG
}

static int start(struct serve *s)
{
	struct argv_buf b;
	int fds[2];

	find_plugin(s);
	build_argv(s, &b);
	if (cli.verbose) {
		fprintf(stderr, "pcache serve: running");
		for (int i = 0; i < b.n; i++)
			fprintf(stderr, " %s", b.v[i]);
		fputc('\n', stderr);
	}
	if (pipe2(fds, O_CLOEXEC)) {
		cli_err(NULL, "pipe: %s", strerror(errno));
		return EXIT_OPERATIONAL;
	}
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		cli_err(NULL, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return EXIT_OPERATIONAL;
	}
	if (s->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		/*
		 * Signals reach nbdkit through us only: `timeout` and a terminal's ^C
		 * signal the whole process group, and a second TERM straight to nbdkit
		 * would cut its clean close short (--exit-with-parent stops it if we die).
		 */
		setpgid(0, 0);

		if (null >= 0)
			dup2(null, STDIN_FILENO);
		/* our stdout carries the URI only: nbdkit's goes with its stderr */
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execvp(b.v[0], b.v);
		dprintf(STDERR_FILENO, "pcache serve: cannot run %s: %s\n", b.v[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	s->err_fd = fds[0];
	fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
	return EXIT_OK;
}

/* nbdkit's words for a client that disconnected with requests in flight. */
static bool client_gone(const char *e)
{
	static const char *const io[] = { "write data: ", "write reply: ", "read request: ",
					  "read data: ", "write error reply: " };
	static const char *const why[] = { "Broken pipe", "Connection reset by peer",
					   "Transport endpoint is not connected" };
	bool sock = false;

	for (size_t i = 0; i < sizeof(io) / sizeof(io[0]); i++)
		sock |= !strncmp(e, io[i], strlen(io[i]));
	for (size_t i = 0; sock && i < sizeof(why) / sizeof(why[0]); i++)
		if (strstr(e, why[i]))
			return true;
	return false;
}

/* Where an absolute path nbdkit was given ends inside a message. */
static bool path_end(char c)
{
	return !c || c == ':' || c == '\'' || c == ' ' || c == ')';
}

/* t on stderr with DEV and BACKING as the user wrote them where nbdkit's absolute paths stand. */
static void put_user_paths(const struct serve_args *a, const char *t)
{
	size_t nd = strlen(a->dev_abs), nb = strlen(a->backing_abs);

	while (*t) {
		if (!strncmp(t, a->dev_abs, nd) && path_end(t[nd])) {
			fputs(a->dev, stderr);
			t += nd;
		} else if (!strncmp(t, a->backing_abs, nb) && path_end(t[nb])) {
			fputs(a->backing, stderr);
			t += nb;
		} else {
			fputc(*t++, stderr);
		}
	}
}

/*
 * One line of nbdkit's output: its error lines ("nbdkit: error: MSG",
 * "nbdkit: pcache[1]: error: MSG") become ours, with DEV and BACKING as the
 * user wrote them; the rest (debug messages with -v) passes unchanged.  The
 * plugin's line for a cache it serves read-only is noted for the announcement.
 */
static void relay_line(struct serve *s, const char *l)
{
	static const char ro[] = ": served read-only: ";
	const struct serve_args *a = s->a;
	const char *e = strncmp(l, "nbdkit: ", 8) ? NULL : strstr(l, "error: ");
	size_t nd = strlen(a->dev_abs);

	if (!strncmp(l, "Use 'nbdkit --help'", 19))
		return;   /* after a usage error of ours: not the user's to act on */
	if (e && !cli.verbose && client_gone(e + 7))
		return;   /* a client that went away is not an error of the cache */
	if (!e) {
		fprintf(stderr, "%s\n", l);
		return;
	}
	e += 7;
	if (!strncmp(e, a->dev_abs, nd) && !strncmp(e + nd, ro, sizeof(ro) - 1))
		s->served_ro = true;
	fputs("pcache serve: ", stderr);
	put_user_paths(a, e);
	fputc('\n', stderr);
}

/* Reads what nbdkit wrote; false at end of file. */
static bool relay(struct serve *s)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(s->err_fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || s->line_len == sizeof(s->line) - 1) {
				s->line[s->line_len] = 0;
				relay_line(s, s->line);
				s->line_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			s->line[s->line_len++] = buf[i];
		}
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		if (s->line_len) {
			s->line[s->line_len] = 0;
			relay_line(s, s->line);
			s->line_len = 0;
		}
		return false;
	}
	return true;
}

/* The pid file appears once nbdkit listens, after the plugin opened the cache. */
static bool pidfile_ready(const struct serve *s)
{
	struct stat st;

	return !stat(s->pidfile, &st) && st.st_size > 0;
}

static void announce(struct serve *s)
{
	s->ready = true;
	printf("%s\n", s->uri);
	fflush(stdout);
	cli_note("%s: serving %s%s at %s; stop with Ctrl-C or SIGTERM", s->a->dev,
		 s->a->backing, s->a->readonly || s->served_ro ? " read-only" : "", s->uri);
}

/* Until nbdkit exits: its output relayed, signals passed on, readiness announced. */
static int supervise(struct serve *s, int *wstatus)
{
	bool open_fd = true;
	sig_atomic_t forwarded = 0;

	for (;;) {
		struct pollfd p = { .fd = s->err_fd, .events = POLLIN };
		pid_t w;

		if (open_fd && poll(&p, 1, s->ready ? 1000 : 20) > 0)
			open_fd = relay(s);
		else if (!open_fd)
			usleep(20000);
		if (n_signals > forwarded) {
			/* every TERM/INT is passed on: nbdkit finishes its clean close */
			kill(s->pid, SIGTERM);
			forwarded = n_signals;
		}
		w = waitpid(s->pid, wstatus, WNOHANG);
		if (w == s->pid)
			break;
		if (w < 0 && errno != EINTR) {
			cli_err(NULL, "waitpid: %s", strerror(errno));
			return EXIT_OPERATIONAL;
		}
		if (!s->ready && !got_signal && pidfile_ready(s)) {
			/* what the plugin said before nbdkit listened is in the pipe: read it first */
			if (open_fd)
				open_fd = relay(s);
			announce(s);
		}
	}
	while (open_fd && relay(s))
		;
	return EXIT_OK;
}

static int verdict(const struct serve *s, int wstatus)
{
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
		if (s->ready)
			cli_note("%s: stopped; the cache was closed cleanly", s->a->dev);
		else if (got_signal)
			cli_note("%s: stopped before serving", s->a->dev);
		else
			cli_err(s->a->dev, "nbdkit exited before serving");
		return got_signal || s->ready ? EXIT_OK : EXIT_OPERATIONAL;
	}
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127) {
		cli_hint("install nbdkit (Debian: apt-get install nbdkit), or set PCACHE_NBDKIT");
		return EXIT_OPERATIONAL;
	}
	if (WIFSIGNALED(wstatus))
		cli_err(s->a->dev, "nbdkit was killed by signal %d (%s)", WTERMSIG(wstatus),
			strsignal(WTERMSIG(wstatus)));
	else if (s->ready)
		cli_err(s->a->dev, "nbdkit exited with status %d", WEXITSTATUS(wstatus));
	else if (!strcmp(s->plugin, "pcache"))
		cli_hint("is the pcache nbdkit plugin installed? ('make install', or set "
			 "PCACHE_NBDKIT_PLUGIN to nbdkit-pcache-plugin.so)");
	return EXIT_OPERATIONAL;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_args a = { .gc_percent = -1 };
	struct serve s = { .a = &a, .pid = -1, .err_fd = -1 };
	struct sigaction sa = { .sa_handler = on_signal };
	int rc = parse(argc, argv, &a), wstatus = 0;

	if (rc != -2)
		return rc;
	rc = resolve(&a);
	if (rc)
		return rc;
	rc = prepare(&s);
	if (!rc) {
		/* no SA_RESTART: a signal interrupts poll() at once */
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		rc = start(&s);
	}
	if (!rc)
		rc = supervise(&s, &wstatus);
	if (!rc)
		rc = verdict(&s, wstatus);
	if (s.err_fd >= 0)
		close(s.err_fd);
	cleanup(&s);
	return rc;
}
