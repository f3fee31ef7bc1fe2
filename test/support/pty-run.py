"""Runs a command on a pseudo-terminal (as if typed at one), answering each prompt in turn.

Usage: pty-run.py PROMPT1 ANSWER1 [PROMPT2 ANSWER2 ...] -- COMMAND ARGS...
Prints everything the terminal showed. Node has no pseudo-terminal of its own; Python's pty module is standard.
"""
import os
import pty
import sys

sep = sys.argv.index('--')
pairs = sys.argv[1:sep]
command = sys.argv[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)
shown = b''
for prompt, answer in zip(pairs[0::2], pairs[1::2]):
    while prompt.encode() not in shown:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        shown += chunk
    os.write(fd, answer.encode() + b'\r')
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    shown += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(shown.decode('utf-8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(status))
