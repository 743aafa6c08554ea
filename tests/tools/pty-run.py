#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs a command on a pseudo-terminal and answers its prompts, for the bats tests.

usage: pty-run.py [--prompt TEXT] [--timeout SECONDS] [ANSWER...] -- CMD [ARG...]

CMD's standard input, output and error are the slave side of a new pty (so isatty()
is true for all three), which echoes what is typed, as a terminal does.  Each time
the output since the last answer contains TEXT (default '? [y/n/a/q] '), the next
ANSWER is typed, followed by a newline; the answer EOF types the terminal's
end-of-file character (^D) instead.
A prompt with no answer left is an error: CMD is killed and the exit status is 125.

Everything CMD writes is copied to standard output, with the terminal's CR LF turned
back into LF.  Exit: CMD's exit status (128 + N when signal N killed it), 124 when it
did not end within the timeout (default 10 s; it is killed), 125 as above, 2 usage.
"""
import os
import select
import signal
import subprocess
import sys
import termios
import time


def usage(msg):
    sys.stderr.write("pty-run: %s\n%s" % (msg, __doc__.split("\n\n")[1] + "\n"))
    sys.exit(2)


def parse(argv):
    prompt, timeout, answers = "? [y/n/a/q] ", 10.0, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return prompt, timeout, answers, argv[i + 1:]
        if a in ("--prompt", "--timeout"):
            if i + 1 >= len(argv):
                usage("%s needs a value" % a)
            if a == "--prompt":
                prompt = argv[i + 1]
            else:
                try:
                    timeout = float(argv[i + 1])
                except ValueError:
                    usage("--timeout: '%s' is not a number" % argv[i + 1])
            i += 2
            continue
        answers.append(a)
        i += 1
    usage("no '--' before the command")
    return None


def main():
    prompt, timeout, answers, cmd = parse(sys.argv[1:])
    if not cmd:
        usage("no command")
    master, slave = os.openpty()
    eof = termios.tcgetattr(slave)[6][termios.VEOF]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)

    out = sys.stdout.buffer
    pending = b""          # output since the last answer, where the next prompt shows
    want = prompt.encode()
    deadline = time.monotonic() + timeout
    status = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stderr.write("pty-run: %s did not end within %g s\n" % (cmd[0], timeout))
            status = 124
            break
        ready, _, _ = select.select([master], [], [], min(left, 0.5))
        if not ready:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:    # EIO: every holder of the slave side closed it
            break
        if not data:
            break
        out.write(data.replace(b"\r\n", b"\n"))
        out.flush()
        pending += data
        while want in pending:
            pending = pending[pending.index(want) + len(want):]
            if not answers:
                sys.stderr.write("pty-run: a prompt with no answer left\n")
                status = 125
                break
            a = answers.pop(0)
            os.write(master, eof if a == "EOF" else a.encode() + b"\n")
        if status is not None:
            break
    if status is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        os.close(master)
        return status
    rc = proc.wait()
    os.close(master)
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(main())
