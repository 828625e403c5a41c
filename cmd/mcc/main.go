// Command mcc is the multicast conference session controller: it leases
// multicast groups, writes and checks session descriptions, and (with
// mcc serve) invites people into multicast sessions over SIP.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	// Schedules name IANA time zones (Europe/Berlin): the binary carries
	// the database, for hosts without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// usageError is a bad command line: exit status 2, with the usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit status without a message of its own (the
// command has printed what it found).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const usage = `mcc: multicast conference session controller

Usage:
  mcc serve   [--sip udp:0.0.0.0:5060,tcp:0.0.0.0:5060] [--host HOST] [--api 127.0.0.1:8760] [--sap IFACE] [--data DIR]
  mcc session create NAME [--family 4|6] [--scope SCOPE] [--media audio,video] [--type broadcast]
  mcc session import FILE.sdp [--name NAME] | --heard ID --name NAME
  mcc directory                    sessions heard over SAP
  mcc watch   [SESSION]            follow participants, streams, re-INVITE results and alerts live
  mcc probe   SESSION [--iface IFACE] [--name NAME] [--interval 2s] [--for DURATION]
              join the session's groups here and report what arrives to mcc serve
  mcc reception SESSION            who receives what: receivers × senders, loss, jitter, alerts
  mcc session list | show NAME | sdp NAME | delete NAME
  mcc invite  SESSION URI... [--wait 45s]   exits 1 unless every one joined
  mcc participants SESSION | remove SESSION ID
  mcc media   add SESSION KIND | remove SESSION STREAM | direction SESSION STREAM DIR
              [--wait 40s]          exits 1 unless every participant has the change

  mcc alloc   --family 4|6 --scope SCOPE | --pool NAME  [--count N] [--lease DURATION] [--data DIR] [-o json]
  mcc leases  [--data DIR] [-o json]
  mcc renew   GROUP... [--lease DURATION] [--data DIR]
  mcc release GROUP... [--data DIR]
  mcc pools   [--data DIR] [-o json]
  mcc sdp lint FILE|-
  mcc sdp new --name NAME --family 4|6 --scope SCOPE --media audio,video [--type broadcast] [-o FILE]
  mcc completion bash|zsh|fish
  mcc version

Commands from session to media talk to a running "mcc serve" through its
control API (--api and --token, MCC_API and MCC_TOKEN, or the files it
writes in the data directory). Those from alloc to pools go through it too
when it runs on the data directory, and open the store themselves when it
does not.

Scopes: IPv4 local, org, global, ssm, glop (--asn), prefix (--prefix);
        IPv6 link, admin, local (site), org, global, ssm, prefix (--prefix).
The data directory is --data, else $MCC_DATA, else $XDG_STATE_HOME/mcc
(~/.local/state/mcc). Custom pools and the RTP port range go in
allocator.json there. Run "mcc COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status: 0 for
// success, 1 when the command failed or found problems, 2 for a bad
// command line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(args, stdin, stdout, stderr)
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mcc: %v\nRun \"mcc help\" for usage.\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "mcc: %v\n", err)
	return 1
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version":
		fmt.Fprintln(stdout, "mcc", version())
		return nil
	case "alloc":
		return cmdAlloc(rest, stdout, stderr)
	case "leases":
		return cmdLeases(rest, stdout, stderr)
	case "release":
		return cmdRelease(rest, stdout, stderr)
	case "renew":
		return cmdRenew(rest, stdout, stderr)
	case "pools":
		return cmdPools(rest, stdout, stderr)
	case "serve":
		return cmdServe(rest, stdout, stderr)
	case "session":
		return cmdSession(rest, stdin, stdout, stderr)
	case "invite":
		return cmdInvite(rest, stdout, stderr)
	case "participants":
		return cmdParticipants(rest, stdout, stderr)
	case "media":
		return cmdMedia(rest, stdout, stderr)
	case "directory":
		return cmdDirectory(rest, stdout, stderr)
	case "watch":
		return cmdWatch(rest, stdout, stderr)
	case "probe":
		return cmdProbe(rest, stdout, stderr)
	case "reception":
		return cmdReception(rest, stdout, stderr)
	case "completion":
		return cmdCompletion(rest, stdout)
	case "sdp":
		if len(rest) == 0 {
			return usagef("sdp needs a sub-command: lint or new")
		}
		switch rest[0] {
		case "lint":
			return cmdSDPLint(rest[1:], stdin, stdout, stderr)
		case "new":
			return cmdSDPNew(rest[1:], stdout, stderr)
		}
		return usagef("unknown sdp sub-command %q: want lint or new", rest[0])
	}
	return usagef("unknown command %q: want serve, session, invite, participants, media, directory, watch, probe, reception, alloc, leases, renew, release, pools, sdp, completion or version", cmd)
}
